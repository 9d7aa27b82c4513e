"""MLflow plumbing shared by every floor: tracking URI, experiments with artifacts under $MLSTACK_HOME, aliases."""

from __future__ import annotations

import logging
import posixpath
from urllib.parse import urlparse

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
# what an MLflow server run with --artifacts-destination (the chart's) records as artifact locations
PROXIED_SCHEME = "mlflow-artifacts"


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


def fetchable_uri(uri: str, artifacts_destination: str | None) -> str:
    """``uri`` as KServe's storage initializer can fetch it: ``mlflow-artifacts:/P`` -> ``<destination>/P``.

    A server run with ``--artifacts-destination D`` stores the artifact ``mlflow-artifacts:/P`` at
    ``D/P``: mlflow/server/handlers.py ``_get_proxied_run_artifact_destination_path`` (the URI's path,
    any host ignored, leading slashes stripped) joined to ``D`` by ``posixpath.join`` in
    ``_get_trace_repo_from_uri`` and by the repository rooted at ``D`` in
    ``_get_artifact_repo_mlflow_artifacts`` (MLflow 3.17.2). With MLflow workspaces on
    (``MLFLOW_ENABLE_WORKSPACES``, off in the chart) the server adds ``workspaces/<name>/``, which the
    URI does not carry: such a server needs an explicit storage URI.
    """
    from mlstack.core.errors import UsageError

    if urlparse(uri).scheme != PROXIED_SCHEME:
        return uri
    if not artifacts_destination:
        raise UsageError(
            f"MLflow serves {uri!r} through its artifact proxy and no artifacts destination is known: "
            "give the MLflow server's --artifacts-destination (the chart annotates the InferenceService "
            "with serving.mlstack.io/artifacts-destination) or pass a storage URI"
        )
    if not artifacts_destination.startswith(KSERVE_SCHEMES):
        raise UsageError(
            f"artifacts destination {artifacts_destination!r} is not a location KServe can fetch "
            f"({', '.join(KSERVE_SCHEMES)})"
        )
    path = urlparse(uri).path.lstrip("/")
    return posixpath.join(artifacts_destination.rstrip("/"), path) if path else artifacts_destination


def kserve_storage_uri(
    client, model_name: str, version: str, artifacts_destination: str | None = None
) -> str:
    """Where KServe should fetch a registered version from: the registry's location, made fetchable.

    ``artifacts_destination`` is the MLflow server's ``--artifacts-destination`` (see :func:`fetchable_uri`).
    """
    from mlflow.exceptions import MlflowException

    from mlstack.core.errors import UsageError

    try:
        uri = client.get_model_version_download_uri(model_name, str(version))
    except MlflowException as exc:
        raise UsageError(
            f"{model_name} version {version} is not in the MLflow registry: {exc.message}"
        ) from exc
    uri = fetchable_uri(uri, artifacts_destination)
    if not uri.startswith(KSERVE_SCHEMES):
        raise UsageError(
            f"MLflow stores {model_name} v{version} at {uri!r}, which KServe cannot fetch; pass a storage URI"
        )
    return uri
