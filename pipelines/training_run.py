"""Entry points of the training pipeline: arguments from settings, local run, compile, submit."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from mlstack.core import data as dataio
from mlstack.core import generator
from mlstack.core.contract import DataContract
from mlstack.core.errors import UsageError
from mlstack.core.registry import ensure_experiment
from mlstack.core.settings import Settings
from pipelines.local import home_lock, run_local
from pipelines.submit import compile_pipeline, submit
from pipelines.training import PIPELINE_NAME, training_pipeline

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
    from components.evaluate import slice_feature_for

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
        ensure_experiment(settings)
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
