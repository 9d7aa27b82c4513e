"""Where registered models live, as KServe's storage initializer can fetch them: pure URI rules.

Talking to the registry is ``mlstack.adapters.mlflow``'s; this module only maps the locations it
answers with.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlparse

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
