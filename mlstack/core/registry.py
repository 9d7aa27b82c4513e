"""MLflow plumbing shared by every floor: tracking URI, experiments with artifacts under $MLSTACK_HOME, aliases."""

from __future__ import annotations

import logging

from mlstack.core.settings import Settings

log = logging.getLogger(__name__)

# storage URI schemes KServe's storage initializer can fetch
KSERVE_SCHEMES = (
    "s3://",
    "gs://",
    "pvc://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "hf://",
    "file://",
    "/",
)


def configure(settings: Settings) -> str:
    """Point the MLflow client at the configured tracking server (SQLite under home by default)."""
    import mlflow

    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///"):
        settings.resolved_home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.registry_uri or uri)
    return uri


def ensure_experiment(settings: Settings) -> str:
    """Return the experiment id, creating it with artifacts under $MLSTACK_HOME when tracking is local."""
    import mlflow

    configure(settings)
    existing = mlflow.get_experiment_by_name(settings.experiment)
    if existing is not None:
        return existing.experiment_id
    location = None
    if settings.resolved_tracking_uri.startswith("sqlite:///"):
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.artifact_root.as_uri()
    try:
        return mlflow.create_experiment(settings.experiment, artifact_location=location)
    except Exception:  # created concurrently by another process
        experiment = mlflow.get_experiment_by_name(settings.experiment)
        if experiment is None:  # the create failed for another reason: let it surface
            raise
        return experiment.experiment_id


def aliases_of(client, model_name: str) -> dict[str, str]:
    """alias -> version for one registered model ({} when the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return {a: str(v) for a, v in client.get_registered_model(model_name).aliases.items()}
    except MlflowException:
        return {}


def kserve_storage_uri(client, model_name: str, version: str) -> str:
    """Where KServe should fetch a registered version from, as the registry records it."""
    from mlflow.exceptions import MlflowException

    from mlstack.core.errors import UsageError

    try:
        uri = client.get_model_version_download_uri(model_name, str(version))
    except MlflowException as exc:
        raise UsageError(
            f"{model_name} version {version} is not in the MLflow registry: {exc.message}"
        ) from exc
    if not uri.startswith(KSERVE_SCHEMES):
        raise UsageError(
            f"MLflow stores {model_name} v{version} at {uri!r}, which KServe cannot fetch; pass a storage URI"
        )
    return uri
