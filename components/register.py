"""Step 5: log the run to MLflow; register a passing model with lineage tags and an alias.

The first passing model of a name becomes ``champion``; later passing models become
``challenger``. A model that fails its gates is logged as a run (metrics, verdict) and is never
registered, so it can never get an alias.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass

import pandas as pd

from mlstack.adapters.mlflow import Mlflow
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
    registry: Mlflow,
    experiment: str,
    register: bool,
    eval_frame: pd.DataFrame | None = None,
) -> dict:
    """Log one MLflow run; when ``register``, log the model, register it, tag it and set its alias.

    The model is compiled first (``mlstack.components.compile``): the ONNX artifact is attached to the
    logged model before it is registered, and only when it passed the parity gate on ``eval_frame``.
    """
    from mlflow.entities import Metric, Param

    experiment_id = registry.ensure_experiment(experiment)
    client = registry.client
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
    run = client.create_run(
        experiment_id, run_name=f"{config.model_name}-train", tags={**tags, "model_name": config.model_name}
    )
    run_id = result["run_id"] = run.info.run_id
    params = {
        "estimator": config.estimator,
        "seed": config.seed,
        "threshold": config.threshold,
        "test_size": config.test_size,
        **{f"param.{k}": v for k, v in config.params.items()},
    }
    metrics = {k: v for k, v in summary["metrics"].items() if v == v}
    for slice_name, values in summary.get("slices", {}).items():
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in slice_name)
        metrics.update({f"slice.{safe}.{k}": v for k, v in values.items() if v == v and k != "rows"})
    now = int(time.time() * 1000)
    status = "FAILED"
    try:
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        registry.log_text(run_id, json.dumps(summary["gates"], indent=2), "gates.json")
        registry.log_text(run_id, contract.to_yaml(), "contract.yaml")
        if register:
            _register_model(
                registry, run_id, pipeline, train_frame, eval_frame, contract, config, tags, result
            )
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return result


def _register_model(
    registry: Mlflow,
    run_id: str,
    pipeline,
    train_frame: pd.DataFrame,
    eval_frame: pd.DataFrame | None,
    contract: DataContract,
    config: TrainingConfig,
    tags: dict[str, str],
    result: dict,
) -> None:
    """Log the reference snapshot and the model, attach the compiled artifact, register, tag, alias."""
    import tempfile
    from pathlib import Path

    from mlflow.models import infer_signature

    from mlstack.components.compile import compile_model
    from mlstack.core import model as model_format
    from mlstack.core.compiled import ONNX_PATH
    from mlstack.core.model import coerce_features

    snapshot = reference_snapshot(
        pipeline, train_frame, contract, config.threshold, config.reference_rows, config.seed
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        snapshot.to_parquet(path, index=False)
        registry.log_artifact(run_id, path, "reference")
    compiled = compile_model(pipeline, eval_frame, contract, config.threshold, config.compile)
    tags = {**tags, **compiled.tags}
    features = coerce_features(train_frame.head(200), contract)
    info = registry.log_sklearn_model(
        run_id,
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
            registry.log_model_artifact(info.model_id, path, str(Path(ONNX_PATH).parent))
    # registered after the artifact is in place, so no version is ever seen without it
    version = registry.register(info.model_uri, config.model_name)
    client = registry.client
    for key, value in tags.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    alias = choose_alias(registry.aliases(config.model_name))
    client.set_registered_model_alias(config.model_name, alias, version)
    result["model_version"] = version
    # read back: what the registry holds now, not what this run meant to set
    result["aliases"] = sorted(client.get_model_version(config.model_name, version).aliases)
