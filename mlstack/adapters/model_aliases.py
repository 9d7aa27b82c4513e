"""The plugin's door to the MLflow registry: read aliases, find a version's storage location, apply alias moves."""

from __future__ import annotations

import logging

from mlstack.core import registry
from mlstack.core.errors import CheckFailed, MlstackError
from mlstack.core.settings import Settings

log = logging.getLogger(__name__)


def _client(settings: Settings):
    from mlflow import MlflowClient

    registry.configure(settings)
    return MlflowClient()


def aliases(settings: Settings, model: str) -> dict[str, str]:
    """alias -> version; {} when the model is unknown. Raises when the tracking server is unreachable."""
    try:
        return registry.aliases_of(_client(settings), model)
    except MlstackError:
        raise
    except Exception as exc:  # connection errors surface as MlflowException / requests errors
        raise MlstackError(
            f"cannot read MLflow aliases of {model!r} from {settings.resolved_tracking_uri}: {exc}"
        ) from exc


def storage_uri(
    settings: Settings, model: str, version: str, artifacts_destination: str | None = None
) -> str:
    """Where KServe should fetch ``model`` version ``version`` from (``mlflow-artifacts:/`` mapped onto
    ``artifacts_destination``, the MLflow server's ``--artifacts-destination``)."""
    return registry.kserve_storage_uri(_client(settings), model, version, artifacts_destination)


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
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one log line, not a bar per file
    import mlflow

    registry.configure(settings)
    return mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model}/{version}", dst_path=destination
    )
