"""The plugin's only door to the cluster: InferenceServices through the kubernetes client.

Reads the current kubeconfig like kubectl (``$KUBECONFIG`` or ``~/.kube/config``; ``--context``
picks another context; its namespace is the default), or the in-cluster service account when running
as a pod (the analysis CronJob).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mlstack.core import isvc
from mlstack.core.errors import CheckFailed, MlstackError, UsageError

log = logging.getLogger(__name__)

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
ADMISSION = "admission webhook"


def server_message(exc) -> str:
    """The API server's own reason for refusing a call, on one line (its ``Status.message``).

    An admission webhook's denial (KServe's or Knative's validators, or any policy webhook) is a
    403 whose message names the webhook and its reason; Knative's messages span lines.
    """
    import json

    try:
        message = json.loads(exc.body or "{}").get("message") or ""
    except (TypeError, ValueError, AttributeError):
        message = ""
    text = message or str(getattr(exc, "reason", "") or exc)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


class NotFound(CheckFailed):
    """The InferenceService does not exist (HTTP 404)."""


class Kube:
    """Get and merge-patch InferenceServices in one namespace."""

    def __init__(self, context: str | None = None, namespace: str | None = None) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
        in_cluster = (
            os.environ.get("KUBERNETES_SERVICE_HOST") and not Path(kubeconfig.split(os.pathsep)[0]).exists()
        )
        try:
            if in_cluster:
                config.load_incluster_config()
                api_client = client.ApiClient()
                default_ns = _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.exists() else "default"
            else:
                # pass the path explicitly: the client reads $KUBECONFIG only once, at import
                config_file = os.environ.get("KUBECONFIG") or None
                api_client = config.new_client_from_config(config_file=config_file, context=context)
                contexts, active = config.list_kube_config_contexts(config_file=config_file)
                chosen = next((c for c in contexts if c["name"] == context), active) if context else active
                default_ns = (chosen or {}).get("context", {}).get("namespace") or "default"
        except (ConfigException, OSError) as exc:
            raise UsageError(
                f"cannot load a kubeconfig ({exc}); set KUBECONFIG or use -f FILE to work on a manifest"
            ) from exc
        self.namespace = namespace or default_ns
        self.api = client.CustomObjectsApi(api_client)

    def _call(self, what: str, name: str, fn, *args):
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(isvc.GROUP, isvc.VERSION, self.namespace, isvc.PLURAL, name, *args)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(
                    f"InferenceService {name!r} not found in namespace {self.namespace!r}"
                ) from exc
            if exc.status == 409:
                raise CheckFailed(
                    f"InferenceService {name!r} changed while we worked on it; run the command again"
                ) from exc
            message = server_message(exc)
            if ADMISSION in message:  # refused by a webhook: its words say what to fix
                raise CheckFailed(
                    f"the API server refused to {what} InferenceService {name!r}: {message}"
                ) from exc
            if exc.status in (401, 403):
                raise MlstackError(
                    f"not allowed to {what} InferenceService {name!r} in {self.namespace!r}: {exc.reason}"
                ) from exc
            raise MlstackError(
                f"cannot {what} InferenceService {name!r}: HTTP {exc.status} {message}"
            ) from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise MlstackError(f"cannot reach the Kubernetes API: {exc}") from exc

    def get(self, name: str) -> dict:
        return self._call("read", name, self.api.get_namespaced_custom_object)

    def patch(self, name: str, body: dict) -> dict:
        """JSON merge patch (the client sends application/merge-patch+json for a dict body)."""
        log.debug("patch %s/%s: %s", self.namespace, name, body)
        return self._call("patch", name, self.api.patch_namespaced_custom_object, body)
