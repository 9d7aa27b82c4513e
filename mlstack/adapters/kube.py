"""The one door to the cluster: InferenceServices, Leases and Events through the kubernetes client.

Reads the current kubeconfig like kubectl (``$KUBECONFIG`` or ``~/.kube/config``; ``--context``
picks another context; its namespace is the default), or the in-cluster service account when running
as a pod (the analysis CronJob, the rollout controller). ``kubectl model`` and the rollout controller
send a move (``mlstack.core.rollout``) the same way: :meth:`Kube.apply_move`.
"""

from __future__ import annotations

import json
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
    """The object does not exist (HTTP 404)."""


class Conflict(CheckFailed):
    """Someone changed the object since it was read, or created it first (HTTP 409)."""


class Kube:
    """Get and merge-patch InferenceServices, keep a Lease, record Events, in one namespace.

    ``field_manager`` names this client in each object's managedFields (the API server's record of
    who last wrote which field, and when); ``user_agent`` names it in the audit log.
    """

    def __init__(
        self,
        context: str | None = None,
        namespace: str | None = None,
        field_manager: str | None = None,
        user_agent: str | None = None,
    ) -> None:
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
        if user_agent:
            api_client.user_agent = user_agent
        self.namespace = namespace or default_ns
        self.field_manager = field_manager
        self.api_client = api_client
        self.api = client.CustomObjectsApi(api_client)
        self.leases = client.CoordinationV1Api(api_client)
        self.events = client.EventsV1Api(api_client)

    def _call(self, what: str, name: str, fn, *args, **kwargs):
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(isvc.GROUP, isvc.VERSION, self.namespace, isvc.PLURAL, name, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(
                    f"InferenceService {name!r} not found in namespace {self.namespace!r}"
                ) from exc
            if exc.status == 409:
                raise Conflict(
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
        extra = {"field_manager": self.field_manager} if self.field_manager else {}
        return self._call("patch", name, self.api.patch_namespaced_custom_object, body, **extra)

    def apply_move(self, move, current: dict) -> dict:
        """Send a ``rollout.Move``'s patches in order; returns the object the server answered last.

        The first patch carries the resourceVersion ``current`` was read at, so the API server refuses
        it (409, :class:`Conflict`) when anyone changed the service since: the move was computed from
        what was read, and must not land on something else.
        """
        if move.create is not None:
            raise ValueError("a create move is applied by the deploy step, not as patches")
        result = current
        for index, patch in enumerate(move.patches):
            if index == 0:
                version = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}}
                patch = isvc.merge_patch(patch, version)
            result = self.patch(move.name, patch)
        return result

    # ------------------------------------------------------------------ Leases and Events

    def _raw(self, what: str, fn, *args, **kwargs) -> dict:
        """Call ``fn`` and return the server's JSON as a dict (no client model objects)."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            response = fn(*args, _preload_content=False, **kwargs)
            return json.loads(response.data or b"{}")
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{what}: not found in namespace {self.namespace!r}") from exc
            if exc.status == 409:
                raise Conflict(f"{what}: changed or created by someone else first") from exc
            if exc.status in (401, 403):
                raise MlstackError(f"not allowed to {what} in {self.namespace!r}: {exc.reason}") from exc
            raise MlstackError(f"cannot {what}: HTTP {exc.status} {exc.reason}: {exc.body}") from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise MlstackError(f"cannot reach the Kubernetes API: {exc}") from exc

    def get_lease(self, name: str) -> dict | None:
        """The Lease (coordination.k8s.io/v1) as the server holds it, or None."""
        try:
            return self._raw(f"read Lease {name!r}", self.leases.read_namespaced_lease, name, self.namespace)
        except NotFound:
            return None

    def create_lease(self, body: dict) -> dict:
        name = body["metadata"]["name"]
        return self._raw(f"create Lease {name!r}", self.leases.create_namespaced_lease, self.namespace, body)

    def update_lease(self, body: dict) -> dict:
        """Replace the Lease; ``body`` carries the resourceVersion it was read at (409 if it moved)."""
        name = body["metadata"]["name"]
        return self._raw(
            f"update Lease {name!r}", self.leases.replace_namespaced_lease, name, self.namespace, body
        )

    def create_event(self, body: dict) -> dict:
        """Record an events.k8s.io/v1 Event (what ``kubectl describe`` and ``kubectl events`` show)."""
        return self._raw("create Event", self.events.create_namespaced_event, self.namespace, body)
