"""The plugin's door to the MLflow registry: read aliases, find a version's storage location, apply alias moves."""

from __future__ import annotations

import logging

from mlstack.adapters import mlflow as mlflow_adapter
from mlstack.core.errors import CheckFailed, MlstackError, UsageError
from mlstack.core.registry import KSERVE_SCHEMES, fetchable_uri
from mlstack.core.settings import Settings

log = logging.getLogger(__name__)


def _client(settings: Settings):
    return mlflow_adapter.from_settings(settings).client


def aliases(settings: Settings, model: str) -> dict[str, str]:
    """alias -> version; {} when the model is unknown. Raises when the tracking server is unreachable."""
    try:
        return mlflow_adapter.from_settings(settings).aliases(model)
    except MlstackError:
        raise
    except Exception as exc:  # connection errors surface as MlflowException / requests errors
        raise MlstackError(
            f"cannot read MLflow aliases of {model!r} from {settings.resolved_tracking_uri}: {exc}"
        ) from exc


def current_aliases(settings: Settings, model: str) -> dict[str, str] | None:
    """alias -> version as the registry holds it now; None when the registered model does not exist.

    Unlike :func:`aliases`, every failure other than "no such model" raises: a caller that acts on
    the answer (the rollout controller) must never read an outage as "no aliases".
    """
    from mlflow.exceptions import MlflowException

    try:
        found = _client(settings).get_registered_model(model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise MlstackError(
            f"cannot read MLflow aliases of {model!r} from {settings.resolved_tracking_uri}: {exc.message}"
        ) from exc
    except Exception as exc:  # requests errors that escape MLflow's own wrapping
        raise MlstackError(
            f"cannot read MLflow aliases of {model!r} from {settings.resolved_tracking_uri}: {exc}"
        ) from exc
    return {alias: str(version) for alias, version in found.aliases.items()}


def storage_uri(
    settings: Settings, model: str, version: str, artifacts_destination: str | None = None
) -> str:
    """Where KServe should fetch ``model`` version ``version`` from (``mlflow-artifacts:/`` mapped onto
    ``artifacts_destination``, the MLflow server's ``--artifacts-destination``)."""
    return kserve_storage_uri(mlflow_adapter.from_settings(settings), model, version, artifacts_destination)


def kserve_storage_uri(
    registry: mlflow_adapter.Mlflow, model_name: str, version: str, artifacts_destination: str | None = None
) -> str:
    """Where KServe should fetch a registered version from: ``registry``'s location, made fetchable.

    ``artifacts_destination`` is the MLflow server's ``--artifacts-destination``
    (``mlstack.core.registry.fetchable_uri``).
    """
    uri = fetchable_uri(registry.version_uri(model_name, version), artifacts_destination)
    if not uri.startswith(KSERVE_SCHEMES):
        raise UsageError(
            f"MLflow stores {model_name} v{version} at {uri!r}, which KServe cannot fetch; pass a storage URI"
        )
    return uri


def apply(settings: Settings, ops) -> list[str]:
    """Apply alias/tag operations in order; return what was done."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    done = []
    for op in ops:
        try:
            if op.action == "set_alias":
                client.set_registered_model_alias(op.model, op.key, op.version)
            elif op.action == "delete_alias":
                client.delete_registered_model_alias(op.model, op.key)
            elif op.action == "set_tag":
                client.set_model_version_tag(op.model, op.version, op.key, op.value or "")
            else:
                raise ValueError(op.action)
        except MlflowException as exc:
            raise CheckFailed(
                f"the cluster change was applied but MLflow refused '{op.describe()}': {exc.message}; "
                "fix the registry by hand"
            ) from exc
        log.info("registry: %s", op.describe())
        done.append(op.describe())
    return done


def version_tags(settings: Settings, model: str, version: str) -> dict[str, str]:
    """The tags of one registered version ({} when the version is unknown); raises when unreachable."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(_client(settings).get_model_version(model, str(version)).tags)
    except MlflowException:
        return {}
    except Exception as exc:
        raise MlstackError(
            f"cannot read tags of {model} v{version} from {settings.resolved_tracking_uri}: {exc}"
        ) from exc


def download_version(settings: Settings, model: str, version: str, destination: str) -> str:
    """Copy a registered version's model directory to ``destination``; returns the local path."""
    registry = mlflow_adapter.from_settings(settings)
    return str(registry.download(registry.version_uri(model, version), destination))
