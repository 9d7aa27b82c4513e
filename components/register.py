"""Step 5: log the run to MLflow; register a passing model with lineage tags and an alias.

The first passing model of a name becomes ``champion``; later passing models become
``challenger``. A model that fails its gates is logged as a run (metrics, verdict) and is never
registered, so it can never get an alias.
"""

import hashlib
import json
import logging
from dataclasses import dataclass

import pandas as pd

from mlstack.core.contract import DataContract
from mlstack.core.settings import TrainingConfig

log = logging.getLogger(__name__)


@dataclass
class Lineage:
    """Where a model came from; every field becomes a tag on the run and the model version."""

    data_fingerprint: str
    data_uri: str
    git_commit: str
    lock_sha256: str
    pipeline_run_id: str
    config_hash: str


def config_hash(config: TrainingConfig, contract: DataContract) -> str:
    """A hash of everything that shapes the model besides the data."""
    canonical = json.dumps(
        {"config": config.model_dump(mode="json"), "contract": contract.model_dump(mode="json")},
        sort_keys=True,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def choose_alias(current_aliases: dict[str, str]) -> str:
    """``champion`` for the first passing model of a name, ``challenger`` after that."""
    return "challenger" if "champion" in current_aliases else "champion"


def lineage_tags(lineage: Lineage, verdict_passed: bool, predictions_sha256: str) -> dict[str, str]:
    return {
        "data_fingerprint": lineage.data_fingerprint,
        "data_uri": lineage.data_uri,
        "git_commit": lineage.git_commit or "unknown",
        "config_hash": lineage.config_hash,
        "lock_sha256": lineage.lock_sha256 or "unknown",
        "pipeline_run_id": lineage.pipeline_run_id,
        "gate_verdict": "passed" if verdict_passed else "failed",
        "predictions_sha256": predictions_sha256,
    }


def reference_snapshot(
    pipeline, train_frame: pd.DataFrame, contract: DataContract, threshold: float, rows: int, seed: int
) -> pd.DataFrame:
    """A seeded sample of the training data with the model's answers: the drift job's reference."""
    from mlstack.core.model import predict

    sample = train_frame.sample(n=min(rows, len(train_frame)), random_state=seed).reset_index(drop=True)
    predictions, probabilities = predict(pipeline, sample, contract, threshold)
    snapshot = sample[contract.feature_names + [contract.target.name]].copy()
    snapshot["prediction"] = predictions
    snapshot["probability"] = probabilities
    return snapshot


def model_requirements() -> list[str]:
    """Pinned requirements of a served model: what unpickling it needs, at the versions that trained it."""
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("mlflow", "scikit-learn", "cloudpickle", "numpy", "pandas", "scipy")
    ]


def log_and_register(
    pipeline,
    train_frame: pd.DataFrame,
    contract: DataContract,
    config: TrainingConfig,
    summary: dict,
    lineage: Lineage,
    tracking_uri: str,
    experiment: str,
    register: bool,
    eval_frame: pd.DataFrame | None = None,
) -> dict:
    """Log one MLflow run; when ``register``, log the model, register it, tag it and set its alias.

    The model is compiled first (``mlstack.components.compile``): the ONNX artifact is attached to the
    logged model before it is registered, and only when it passed the parity gate on ``eval_frame``.
    """
    import tempfile
    from pathlib import Path

    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from mlstack.components.compile import compile_model
    from mlstack.core import model as model_format
    from mlstack.core.compiled import ONNX_PATH
    from mlstack.core.model import coerce_features
    from mlstack.core.registry import aliases_of
    from mlstack.core.settings import Settings

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        from mlstack.core.registry import ensure_experiment

        home = Path(tracking_uri.removeprefix("sqlite:///")).parent
        experiment_id = ensure_experiment(
            Settings(home=home, tracking_uri=tracking_uri, experiment=experiment)
        )
    else:
        existing = mlflow.get_experiment_by_name(experiment)
        experiment_id = existing.experiment_id if existing else mlflow.create_experiment(experiment)
    client = MlflowClient()
    tags = lineage_tags(lineage, summary["gates"]["passed"], summary["predictions_sha256"])
    result = {
        "run_id": None,
        "model_name": config.model_name,
        "model_version": None,
        "aliases": [],
        "metrics": summary["metrics"],
        "gates": summary["gates"],
        "data_fingerprint": lineage.data_fingerprint,
        "predictions_sha256": summary["predictions_sha256"],
        "pipeline_run_id": lineage.pipeline_run_id,
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{config.model_name}-train") as run:
        result["run_id"] = run.info.run_id
        mlflow.set_tags({**tags, "model_name": config.model_name})
        mlflow.log_params(
            {
                "estimator": config.estimator,
                "seed": config.seed,
                "threshold": config.threshold,
                "test_size": config.test_size,
                **{f"param.{k}": v for k, v in config.params.items()},
            }
        )
        mlflow.log_metrics({k: v for k, v in summary["metrics"].items() if v == v})
        for slice_name, values in summary.get("slices", {}).items():
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in slice_name)
            mlflow.log_metrics({f"slice.{safe}.{k}": v for k, v in values.items() if v == v and k != "rows"})
        mlflow.log_dict(summary["gates"], "gates.json")
        mlflow.log_text(contract.to_yaml(), "contract.yaml")
        if not register:
            return result
        snapshot = reference_snapshot(
            pipeline, train_frame, contract, config.threshold, config.reference_rows, config.seed
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "reference.parquet"
            snapshot.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="reference")
        compiled = compile_model(pipeline, eval_frame, contract, config.threshold, config.compile)
        tags = {**tags, **compiled.tags}
        features = coerce_features(train_frame.head(200), contract)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(features, pipeline.predict(features)),
            input_example=features.head(3),
            metadata={**model_format.metadata_for(contract, config.threshold), **compiled.metadata},
            # skops (MLflow's default) refuses the numpy dtypes a OneHotEncoder holds
            serialization_format="cloudpickle",
            # explicit requirements: MLflow's inference reloads the model in a subprocess (~10 s)
            pip_requirements=model_requirements(),
        )
        if compiled.onnx is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / Path(ONNX_PATH).name
                path.write_bytes(compiled.onnx)
                client.log_model_artifact(info.model_id, str(path), str(Path(ONNX_PATH).parent))
        # registered after the artifact is in place, so no version is ever seen without it
        version = str(mlflow.register_model(info.model_uri, config.model_name).version)
        for key, value in tags.items():
            client.set_model_version_tag(config.model_name, version, key, value)
        alias = choose_alias(aliases_of(client, config.model_name))
        client.set_registered_model_alias(config.model_name, alias, version)
        result["model_version"] = version
        # read back: what the registry holds now, not what this run meant to set
        result["aliases"] = sorted(client.get_model_version(config.model_name, version).aliases)
    return result
