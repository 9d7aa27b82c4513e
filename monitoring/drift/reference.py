"""Find a model version's reference snapshot, contract and live versions through MLflow.

Convention (the register step follows it): the source run of a registered model version holds the
artifact ``reference/reference.parquet`` with the contract's features, the target, and the model's
``prediction`` / ``probability`` on those rows. The contract itself is in the model's MLmodel
metadata (``mlstack.core.model``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from mlstack.adapters.mlflow import Mlflow
from mlstack.core.errors import MlstackError, UsageError

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/reference.parquet"
LIVE_ALIASES = ("champion", "challenger")


def resolve_version(registry: Mlflow, model: str, version: str | None) -> str:
    """The version to judge: the one given, else the champion; UsageError when neither exists."""
    from mlflow.exceptions import MlflowException

    client = registry.client
    try:
        if version:
            client.get_model_version(model, version)
            return str(version)
        return str(client.get_model_version_by_alias(model, "champion").version)
    except MlflowException as exc:
        wanted = f"version {version}" if version else "a champion alias"
        raise UsageError(
            f"model {model!r} has no {wanted} in the MLflow registry; register it first, "
            "or pass --reference URI (and --version V)"
        ) from exc


def fetch_reference(registry: Mlflow, model: str, version: str) -> pd.DataFrame:
    """Download and read the reference snapshot of one registered model version."""
    from mlflow.exceptions import MlflowException

    try:
        run_id = registry.client.get_model_version(model, version).run_id
    except MlflowException as exc:
        raise UsageError(f"model {model!r} version {version} is not in the MLflow registry") from exc
    if not run_id:
        raise UsageError(
            f"model {model!r} version {version} has no source run, so no reference snapshot; "
            "pass --reference URI"
        )
    with tempfile.TemporaryDirectory(prefix="mlstack-reference-") as tmp:
        try:
            local = registry.download(f"runs:/{run_id}/{REFERENCE_ARTIFACT}", tmp)
        except (MlflowException, OSError) as exc:
            raise UsageError(
                f"no reference snapshot for model {model!r} version {version}: run {run_id} has no "
                f"artifact {REFERENCE_ARTIFACT}; pass --reference URI"
            ) from exc
        return pd.read_parquet(Path(local))


def live_versions(registry: Mlflow, model: str) -> set[str]:
    """Versions that still serve traffic (champion, challenger); the drift metrics of others are retired."""
    aliases = registry.aliases(model)
    return {version for alias, version in aliases.items() if alias in LIVE_ALIASES}


def registered(registry: Mlflow, model: str) -> bool:
    """Whether the registry knows the model at all."""
    from mlflow.exceptions import MlflowException

    try:
        registry.client.get_registered_model(model)
        return True
    except MlflowException:
        return False


def nothing_to_judge(registry: Mlflow, model: str) -> str | None:
    """Why the registry holds no version of ``model`` to judge yet; None once it has a champion.

    Before the first deploy the drift CronJob finds the model unregistered, or registered without a
    champion: nothing to do, not a failure. Only the registry's own answer counts (MLflow's
    ``RESOURCE_DOES_NOT_EXIST``); an unreachable or failing registry raises.
    """
    from mlflow.exceptions import MlflowException

    try:
        aliases = registry.client.get_registered_model(model).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return f"model {model!r} is not in the MLflow registry yet"
        raise MlstackError(f"cannot read model {model!r} from the MLflow registry: {exc.message}") from exc
    if "champion" not in aliases:
        return f"model {model!r} has no champion alias in the MLflow registry yet"
    return None
