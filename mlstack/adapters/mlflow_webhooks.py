"""MLflow's model-registry webhooks: register the rollout controller's, test that MLflow reaches it.

Names read in MLflow 3.17.2 (site-packages/mlflow): ``tracking/client.py`` ``MlflowClient.
create_webhook`` / ``update_webhook`` / ``list_webhooks`` / ``test_webhook``; the events in
``entities/webhook.py`` (``WebhookEntity.MODEL_VERSION_ALIAS`` with ``CREATED`` and ``DELETED``);
only an admin may call them when basic auth is on (``server/auth/__init__.py``
``WEBHOOK_BEFORE_REQUEST_HANDLERS``: ``sender_is_admin``). MLflow refuses a URL whose scheme is not in
``MLFLOW_WEBHOOK_ALLOWED_SCHEMES`` (default ``https``) or that resolves to a private address unless
``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`` is true (``utils/validation.py`` ``_validate_webhook_url``),
both read by the *server*, so the error names them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlstack.adapters import mlflow as mlflow_adapter
from mlstack.core.errors import CheckFailed, MlstackError, UsageError
from mlstack.core.settings import Settings

if TYPE_CHECKING:  # importing MLflow takes seconds
    from mlflow.entities.webhook import WebhookEventStr

log = logging.getLogger(__name__)

# moving an alias sends only "created" for its new version; deleting one sends "deleted"
# (server/handlers.py _set_registered_model_alias / _delete_registered_model_alias)
# (typed as MLflow's own WebhookEventStr, mlflow/entities/webhook.py at 3.17.2)
ALIAS_EVENTS: tuple[WebhookEventStr, ...] = ("model_version_alias.created", "model_version_alias.deleted")
DESCRIPTION = "mlstack rollout controller: MLflow aliases drive InferenceServices (docs/rollouts.md)"


@dataclass(frozen=True, kw_only=True)
class Registration:
    """What ``ensure`` did: created, updated or found the webhook as wanted."""

    action: str  # created | updated | unchanged
    webhook_id: str
    url: str


def _find(client, name: str):
    page_token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=page_token)
        for hook in page:
            if hook.name == name:
                return hook
        page_token = page.token
        if not page_token:
            return None


def _refused(exc, url: str) -> MlstackError:
    text = getattr(exc, "message", str(exc))
    if "scheme" in text or "public IP" in text or "private" in text.lower():
        return UsageError(
            f"MLflow refused the webhook URL {url!r}: {text}; an in-cluster address needs the MLflow "
            "server started with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and "
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true (the chart sets both when rolloutController.enabled)"
        )
    if "PERMISSION_DENIED" in str(getattr(exc, "error_code", "")) or "403" in text:
        return CheckFailed(
            f"MLflow refused to manage webhooks: {text}; webhooks need MLflow admin credentials"
        )
    return MlstackError(f"MLflow refused the webhook for {url!r}: {text}")


def ensure(settings: Settings, name: str, url: str, secret: str, update_secret: bool = True) -> Registration:
    """Create the webhook ``name`` or bring it to ``url``, the alias events, ACTIVE and ``secret``.

    MLflow never returns a secret, so an existing webhook gets ``secret`` written again when
    ``update_secret`` (a rotated Secret reaches MLflow when the controller restarts).
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_adapter.from_settings(settings).client
    try:
        hook = _find(client, name)
        if hook is None:
            created = client.create_webhook(
                name=name, url=url, events=list(ALIAS_EVENTS), description=DESCRIPTION, secret=secret
            )
            log.info("registered MLflow webhook %s -> %s", name, url)
            return Registration(action="created", webhook_id=created.webhook_id, url=url)
        events = sorted(str(e) for e in hook.events)
        same = hook.url == url and events == sorted(ALIAS_EVENTS) and str(hook.status) == "ACTIVE"
        if same and not update_secret:
            return Registration(action="unchanged", webhook_id=hook.webhook_id, url=url)
        client.update_webhook(
            hook.webhook_id,
            url=url,
            events=list(ALIAS_EVENTS),
            description=DESCRIPTION,
            secret=secret,
            status="ACTIVE",
        )
        log.info("updated MLflow webhook %s -> %s", name, url)
        return Registration(action="updated", webhook_id=hook.webhook_id, url=url)
    except MlflowException as exc:
        raise _refused(exc, url) from exc
    except MlstackError:
        raise
    except Exception as exc:  # connection errors
        raise MlstackError(f"cannot reach MLflow at {settings.resolved_tracking_uri}: {exc}") from exc


def send_test_event(settings: Settings, webhook_id: str) -> tuple[bool, str]:
    """Ask MLflow to send its example alias event now; (delivered, what happened)."""
    from mlflow.exceptions import MlflowException

    try:
        result = mlflow_adapter.from_settings(settings).client.test_webhook(webhook_id, event=ALIAS_EVENTS[0])
    except MlflowException as exc:
        return False, exc.message
    if result.success:
        return True, f"HTTP {result.response_status}"
    if result.response_status:
        return False, f"HTTP {result.response_status}: {(result.response_body or '')[:200]}"
    return False, result.error_message or "no answer"
