"""InferenceService objects as plain dicts: where mlstack keeps model versions and how to read KServe's status.

The moves that change a service (create, canary, promote, rollback) are in ``mlstack.core.rollout``.

Pure functions over the JSON the Kubernetes API returns (no kserve import: the core stays light and both
``serving`` and ``components`` use it). KServe in Knative mode splits traffic with
``spec.predictor.canaryTrafficPercent`` between the latest revision and
``status.components.predictor.latestRolledoutRevision``.

Where the versions live:

- ``spec.predictor.model.storageUri`` and the env var ``MLSTACK_MODEL_VERSION`` on
  ``spec.predictor.model`` say what the *latest* revision serves (the predictor reports this version).
- Annotations written only when a canary starts (that change creates a new revision anyway; changing
  annotations later would roll a needless revision, because KServe copies them to the revision template)
  remember the champion being replaced, so a rollback can restore its spec.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mlstack.core.errors import UsageError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"

VERSION_ENV = "MLSTACK_MODEL_VERSION"
PREFIX = "serving.mlstack.io/"
ANN_MODEL = PREFIX + "registered-model"
ANN_CHAMPION_VERSION = PREFIX + "champion-version"
ANN_CHAMPION_URI = PREFIX + "champion-storage-uri"
ANN_CHALLENGER_VERSION = PREFIX + "challenger-version"
ANN_STARTED_AT = PREFIX + "canary-started-at"
ANN_REJECTED_VERSION = PREFIX + "rejected-version"
# the MLflow server's --artifacts-destination, set by the chart: where mlflow-artifacts:/ URIs live
ANN_ARTIFACTS_DESTINATION = PREFIX + "artifacts-destination"


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def annotations_of(obj: dict) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def registered_model(obj: dict) -> str:
    """The MLflow registered model this service serves (annotation, else the service name)."""
    return annotations_of(obj).get(ANN_MODEL) or name_of(obj)


def artifacts_destination(obj: dict) -> str | None:
    """Where the registry's MLflow server keeps proxied artifacts (annotation; None when unset)."""
    return annotations_of(obj).get(ANN_ARTIFACTS_DESTINATION) or None


def model_spec(obj: dict) -> dict:
    """``spec.predictor.model``; mlstack manages services that use KServe's model schema."""
    model = ((obj.get("spec") or {}).get("predictor") or {}).get("model")
    if not isinstance(model, dict) or not model.get("storageUri"):
        raise UsageError(
            f"InferenceService {name_of(obj)!r} has no spec.predictor.model.storageUri; "
            "mlstack manages services that use the predictor.model schema"
        )
    return model


def canary_percent(obj: dict) -> int | None:
    value = ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    return None if value is None else int(value)


def serving_version(obj: dict) -> str | None:
    """The model version the latest revision serves, from the predictor's env."""
    for env in model_spec(obj).get("env") or []:
        if env.get("name") == VERSION_ENV:
            return env.get("value")
    return None


def predictor_status(obj: dict) -> dict:
    return ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}


def ready_condition(obj: dict) -> str | None:
    """'True' | 'False' | 'Unknown' of the service's Ready condition (None without status)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status")
    return None


@dataclass(frozen=True)
class Revisions:
    """KServe's view of the predictor's revisions and traffic, as written in the status."""

    latest_created: str | None
    latest_ready: str | None
    latest_rolledout: str | None
    previous_rolledout: str | None
    traffic: tuple[dict, ...]
    observed_generation: int | None
    generation: int | None
    ready: str | None

    @property
    def has_status(self) -> bool:
        return any(x is not None for x in (self.latest_created, self.latest_ready, self.latest_rolledout))

    @property
    def up_to_date(self) -> bool:
        """KServe has seen the current spec and its latest revision is ready."""
        seen = (
            self.generation is None
            or self.observed_generation is None
            or (self.observed_generation >= self.generation)
        )
        return seen and self.latest_created is not None and self.latest_created == self.latest_ready

    def percent_of(self, revision: str | None) -> int:
        return sum(int(t.get("percent") or 0) for t in self.traffic if t.get("revisionName") == revision)


def revisions(obj: dict) -> Revisions:
    status = predictor_status(obj)
    return Revisions(
        latest_created=status.get("latestCreatedRevision"),
        latest_ready=status.get("latestReadyRevision"),
        latest_rolledout=status.get("latestRolledoutRevision"),
        previous_rolledout=status.get("previousRolledoutRevision"),
        traffic=tuple(status.get("traffic") or ()),
        observed_generation=(obj.get("status") or {}).get("observedGeneration"),
        generation=(obj.get("metadata") or {}).get("generation"),
        ready=ready_condition(obj),
    )


def version_env(env: list[dict] | None, version: str) -> list[dict]:
    """The env list with MLSTACK_MODEL_VERSION set (a merge patch replaces lists whole)."""
    kept = [dict(e) for e in env or [] if e.get("name") != VERSION_ENV]
    return [*kept, {"name": VERSION_ENV, "value": str(version)}]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what ``kubectl patch --type merge`` and the API server do)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
