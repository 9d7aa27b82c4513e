"""The training pipeline: ingest → validate → train → evaluate ─gate─► register (or record the rejection).

The same pipeline object runs on Kubeflow (compiled IR) and locally through ``kfp.local``.

Entry points, as in ``pipelines/batch_scoring.py``: ``pipeline_arguments`` (everything a run depends
on, from settings), ``run_training_locally`` (kfp.local, no cluster), ``compile_training`` and
``submit_training`` (upload to a KFP server), over the shared ``mlstack.pipelines.local`` and ``mlstack.pipelines.submit``.
"""

import hashlib
import json
import subprocess
from pathlib import Path

from kfp import dsl

from mlstack.adapters import mlflow as mlflow_adapter
from mlstack.components.training_ops import (
    deploy_canary_op,
    evaluate_op,
    ingest_op,
    register_op,
    train_op,
    validate_op,
)
from mlstack.core import data as dataio
from mlstack.core import generator
from mlstack.core.contract import DataContract
from mlstack.core.errors import UsageError
from mlstack.core.settings import Settings
from mlstack.pipelines.cluster_env import ENV_CONFIG_MAP, MLFLOW_SECRET, S3_SECRET, with_cluster_env
from mlstack.pipelines.local import home_lock, run_local
from mlstack.pipelines.submit import compile_pipeline, submit

PIPELINE_NAME = "mlstack-training"


@dsl.pipeline(
    name=PIPELINE_NAME, description="Train, evaluate, gate and register a scikit-learn model in MLflow."
)
def training_pipeline(
    data_uri: str,
    contract_yaml: str,
    config_json: str,
    tracking_uri: str,
    experiment: str = "mlstack",
    validation_tolerance: float = 0.01,
    git_commit: str = "unknown",
    lock_sha256: str = "unknown",
    deploy: bool = False,
    inference_service: str = "",
    namespace: str = "mlstack",
    canary_percent: int = 10,
    s3_secret: str = S3_SECRET,
    mlflow_secret: str = MLFLOW_SECRET,
    env_config_map: str = ENV_CONFIG_MAP,
) -> str:
    """Returns the run's result as JSON (the same shape whether the gate passed or not).

    ``s3_secret``, ``mlflow_secret`` and ``env_config_map`` name the Secrets and the ConfigMap in
    the pipeline namespace that give the steps reading ``s3://`` or talking to MLflow their
    credentials (see ``pipelines/cluster_env.py``).
    """

    def cluster_env(task):
        return with_cluster_env(task, s3_secret, mlflow_secret, env_config_map)

    ingest = cluster_env(ingest_op(data_uri=data_uri))
    ingest.set_caching_options(False)  # the data behind a URI can change

    validate = validate_op(
        dataset=ingest.outputs["dataset"], contract_yaml=contract_yaml, tolerance=validation_tolerance
    )
    train = train_op(dataset=ingest.outputs["dataset"], contract_yaml=contract_yaml, config_json=config_json)
    train.after(validate)
    # sized from `make bench-train` (bench/results/train.md): on 50 000 rows the step peaks at 372 MiB
    # RSS and 6.7 CPU-seconds (logistic regression, the default), 424 MiB / 18.4 CPU-s for the
    # heaviest estimator (random forest). The memory request holds the worst of them; the CPU request
    # guarantees a quarter core (the default finishes in ~27 s even on a saturated node) and the
    # limit lets it burst to 2. The kind worker must fit the requests (tests/unit/test_resource_budget.py).
    # Without explicit requests Kubernetes copies the limits into them.
    train.set_cpu_request("250m").set_cpu_limit("2")
    train.set_memory_request("512Mi").set_memory_limit("2Gi")  # deterministic: cache stays on
    # no retry: training is deterministic, so a retry repeats the same failure (too few rows per
    # class, a bad parameter) and hides its cause; an evicted pod is rescheduled by re-running

    evaluate = cluster_env(
        evaluate_op(
            model=train.outputs["model"],
            eval_set=train.outputs["eval_set"],
            contract_yaml=contract_yaml,
            config_json=config_json,
            tracking_uri=tracking_uri,
        )
    )
    evaluate.set_caching_options(False)  # depends on the current champion, which changes

    common = dict(
        model=train.outputs["model"],
        train_set=train.outputs["train_set"],
        eval_set=train.outputs["eval_set"],
        contract_yaml=contract_yaml,
        config_json=config_json,
        summary_json=evaluate.outputs["summary"],
        data_fingerprint=ingest.outputs["Output"],
        data_uri=data_uri,
        git_commit=git_commit,
        lock_sha256=lock_sha256,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tracking_uri=tracking_uri,
        experiment=experiment,
    )
    with dsl.If(evaluate.outputs["decision"] == "passed", name="gate-passed"):
        registered = cluster_env(register_op(register=True, **common)).set_display_name("register")
        registered.set_caching_options(False)  # side effects: never skip, never retry (no duplicate versions)
        with dsl.If(deploy == True, name="deploy-enabled"):  # noqa: E712 (a pipeline condition, not Python)
            # MLflow credentials and the S3 endpoint from the pipeline namespace, as for register
            deployed = cluster_env(
                deploy_canary_op(
                    register_result=registered.output,
                    deploy=deploy,
                    inference_service=inference_service,
                    namespace=namespace,
                    percent=canary_percent,
                    tracking_uri=tracking_uri,
                )
            ).set_display_name("deploy")
            deployed.set_caching_options(False)  # talks to the cluster
    with dsl.Else(name="gate-failed"):
        rejected = cluster_env(register_op(register=False, **common)).set_display_name("record-rejection")
        rejected.set_caching_options(False)
    return dsl.OneOf(registered.output, rejected.output)


# Entry points: arguments from settings, local run (kfp.local), compile, submit.

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONTRACT = REPO / "pipelines" / "config" / "loan_contract.yaml"
DEFAULT_CONFIG = REPO / "pipelines" / "config" / "training.yaml"


def git_commit(settings: Settings) -> str:
    """The repository's commit (settings ``git_commit`` first), or ``unknown`` outside a checkout."""
    if settings.git_commit:
        return settings.git_commit
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def lock_sha256(settings: Settings) -> str:
    """Hash of uv.lock (settings ``lock_sha256`` first): which exact dependency set trained the model."""
    if settings.lock_sha256:
        return settings.lock_sha256
    lock = REPO / "uv.lock"
    return "sha256:" + hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "unknown"


def default_data(settings: Settings, rows: int = 50_000, seed: int = 0) -> str:
    """The generator's table under $MLSTACK_HOME, created on first use."""
    path = settings.resolved_home / "data" / f"train-{rows}-seed{seed}.parquet"
    if not path.is_file():
        dataio.save_table(generator.generate(rows, seed=seed), str(path))
    return str(path)


def pipeline_arguments(settings: Settings, data_uri: str, contract: DataContract, tracking_uri: str) -> dict:
    """The pipeline's parameters; everything the run depends on is passed, nothing read from the machine."""
    from mlstack.components.evaluate import slice_feature_for

    try:  # a config that does not fit the contract is bad usage, found before any step runs
        slice_feature_for(contract, settings.training.slice_feature)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return {
        "data_uri": data_uri,
        "contract_yaml": contract.to_yaml(),
        "config_json": settings.training.model_dump_json(),
        "tracking_uri": tracking_uri,
        "experiment": settings.experiment,
        "validation_tolerance": settings.training.validation_tolerance,
        "git_commit": git_commit(settings),
        "lock_sha256": lock_sha256(settings),
        "deploy": settings.canary.deploy,
        "inference_service": settings.canary.inference_service or settings.training.model_name,
        "namespace": settings.canary.namespace,
        "canary_percent": settings.canary.initial_percent,
    }


def load_contract(path: Path | None) -> DataContract:
    return DataContract.load(path or DEFAULT_CONTRACT)


def run_training_locally(
    settings: Settings, data_uri: str | None, contract_path: Path | None, show_progress: bool = True
) -> dict:
    """Run the training pipeline through kfp.local against the configured MLflow; returns the result."""
    if data_uri and contract_path is None and not settings.allow_default_contract:
        raise UsageError(
            "--data needs --contract (draft one with: mlstack data infer-contract DATA --target COL --out contract.yaml)"
        )
    contract = load_contract(contract_path)
    if data_uri:
        from mlstack.core import storage

        if not storage.exists(data_uri):  # found here, in one line, not by a failed ingest step
            raise dataio.DataError(f"no data at {data_uri}: check the path or the s3 endpoint/credentials")
    with home_lock(settings.resolved_home):  # concurrent runs on one home take turns
        data_uri = data_uri or default_data(settings)
        arguments = pipeline_arguments(settings, data_uri, contract, settings.resolved_tracking_uri)
        mlflow_adapter.from_settings(settings).ensure_experiment(settings.experiment)
        return json.loads(run_local(training_pipeline, arguments, settings.resolved_home, show_progress))


def compile_training(out_dir: Path) -> Path:
    return compile_pipeline(training_pipeline, out_dir / "training.yaml")


def submit_training(
    settings: Settings,
    host: str,
    data_uri: str,
    contract_path: Path | None,
    tracking_uri: str,
    schedule: str | None,
) -> dict:
    arguments = pipeline_arguments(settings, data_uri, load_contract(contract_path), tracking_uri)
    return submit(training_pipeline, PIPELINE_NAME, host, arguments, settings.experiment, schedule)
