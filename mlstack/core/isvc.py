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


def name_of(obj: dict[str, Any]) -> str:
    name: str = (obj.get("metadata") or {}).get("name", "")
    return name


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def registered_model(obj: dict[str, Any]) -> str:
    """The MLflow registered model this service serves (annotation, else the service name)."""
    return annotations_of(obj).get(ANN_MODEL) or name_of(obj)


def artifacts_destination(obj: dict[str, Any]) -> str | None:
    """Where the registry's MLflow server keeps proxied artifacts (annotation; None when unset)."""
    return annotations_of(obj).get(ANN_ARTIFACTS_DESTINATION) or None


def model_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """``spec.predictor.model``; mlstack manages services that use KServe's model schema."""
    model = ((obj.get("spec") or {}).get("predictor") or {}).get("model")
    if not isinstance(model, dict) or not model.get("storageUri"):
        raise UsageError(
            f"InferenceService {name_of(obj)!r} has no spec.predictor.model.storageUri; "
            "mlstack manages services that use the predictor.model schema"
        )
    return model


def canary_percent(obj: dict[str, Any]) -> int | None:
    value = ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    return None if value is None else int(value)


def serving_version(obj: dict[str, Any]) -> str | None:
    """The model version the latest revision serves, from the predictor's env."""
    for env in model_spec(obj).get("env") or []:
        if env.get("name") == VERSION_ENV:
            value: str | None = env.get("value")
            return value
    return None


def predictor_status(obj: dict[str, Any]) -> dict[str, Any]:
    return ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}


def ready_condition(obj: dict[str, Any]) -> str | None:
    """'True' | 'False' | 'Unknown' of the service's Ready condition (None without status)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            status: str | None = condition.get("status")
            return status
    return None


@dataclass(frozen=True)
class Revisions:
    """KServe's view of the predictor's revisions and traffic, as written in the status.

    "Up to date" is judged only from what KServe writes. KServe keeps no record of which
    InferenceService generation it has acted on: in Knative mode ``status.observedGeneration`` is
    the Knative Service's (kserve v0.20.0 pkg/apis/serving/v1beta1/inference_service_status.go
    ``PropagateStatus``: ``ss.ObservedGeneration = serviceStatus.ObservedGeneration``), a different
    counter. The two part for good as soon as a spec change leaves the Knative Service as it was
    (promoting a canary that runs at 100 %), or the Knative Service changes alone (KServe moving
    the ``prev`` target), so comparing them with ``metadata.generation`` calls a service rolled out
    too early or never (seen on the real controllers: tests/integration/test_kserve_phases.py).
    """

    latest_created: str | None
    latest_ready: str | None
    latest_rolledout: str | None
    previous_rolledout: str | None
    traffic: tuple[dict[str, Any], ...]
    ready: str | None
    spec_percent: int | None  # spec.predictor.canaryTrafficPercent
    failure: str | None  # KServe's modelStatus.lastFailureInfo while it blocks the rollout, one phrase
    not_ready: str | None  # the Ready condition's reason and message when it is False, one line

    @property
    def has_status(self) -> bool:
        return any(x is not None for x in (self.latest_created, self.latest_ready, self.latest_rolledout))

    @property
    def wanted_latest_share(self) -> int:
        """The share KServe gives the latest revision for this spec (ksvc_reconciler.go createKnativeService).

        ``canaryTrafficPercent`` once a revision has been rolled out; before that, or without it, 100.
        """
        if self.spec_percent is None or not self.latest_rolledout:
            return 100
        return self.spec_percent

    @property
    def latest_share(self) -> int | None:
        """The share of the ``latestRevision: true`` traffic target (None: no such target)."""
        for target in self.traffic:
            if target.get("latestRevision") and target.get("revisionName") == self.latest_ready:
                return int(target.get("percent") or 0)
        return None

    @property
    def up_to_date(self) -> bool:
        """The latest revision is Ready and Knative routes to it the share the spec asks for.

        A status KServe has not yet rewritten after a spec change shows the old share (or an older
        latest revision), so it is not up to date, with one exception no status field can tell: a
        change that keeps the latest share (a canary started at 100 %) looks settled until Knative
        has created the new revision.
        """
        return (
            self.latest_created is not None
            and self.latest_created == self.latest_ready
            and self.latest_share == self.wanted_latest_share
        )

    def percent_of(self, revision: str | None) -> int:
        return sum(int(t.get("percent") or 0) for t in self.traffic if t.get("revisionName") == revision)


def unsettled(revs: Revisions) -> str | None:
    """Why KServe's status does not show the spec rolled out yet, in one line (None: it does)."""
    if not revs.has_status:
        return None
    if revs.ready == "False":
        return f"not Ready: {revs.not_ready}"
    if revs.latest_created != revs.latest_ready:
        failure = f" ({revs.failure})" if revs.failure else ""
        return f"revision {revs.latest_created} is not Ready{failure}; latest Ready: {revs.latest_ready or 'none'}"
    if revs.failure:
        return f"KServe cannot roll out this spec: {revs.failure}"
    if revs.up_to_date:
        return None
    return (
        f"KServe has not routed {revs.wanted_latest_share}% to revision {revs.latest_ready} yet "
        f"(it has {revs.latest_share or 0}%)"
    )


# KServe's modelStatus.transitionStatus values that mean the spec cannot be rolled out
# (kserve v0.20.0 pkg/apis/serving/v1beta1/inference_service_status.go TransitionStatus); its
# lastFailureInfo stays after a later rollout succeeds (UpToDate), so it counts only with these
BLOCKED = ("BlockedByFailedLoad", "InvalidSpec")


def failure_info(obj: dict[str, Any]) -> str | None:
    """KServe's ``status.modelStatus.lastFailureInfo`` as one phrase, while it blocks the rollout."""
    model_status = (obj.get("status") or {}).get("modelStatus") or {}
    info = model_status.get("lastFailureInfo") or {}
    if not info or model_status.get("transitionStatus") not in BLOCKED:
        return None
    parts = [str(info[k]) for k in ("reason", "message") if info.get(k)]
    if info.get("exitCode") is not None:
        parts.append(f"exit code {info['exitCode']}")
    return ", ".join(parts) or None


def revisions(obj: dict[str, Any]) -> Revisions:
    status = predictor_status(obj)
    return Revisions(
        latest_created=status.get("latestCreatedRevision"),
        latest_ready=status.get("latestReadyRevision"),
        latest_rolledout=status.get("latestRolledoutRevision"),
        previous_rolledout=status.get("previousRolledoutRevision"),
        traffic=tuple(status.get("traffic") or ()),
        ready=ready_condition(obj),
        spec_percent=canary_percent(obj),
        failure=failure_info(obj),
        not_ready=_condition_text(obj, "Ready"),
    )


def _condition_text(obj: dict[str, Any], kind: str) -> str | None:
    """``reason: message`` of a False condition, on one line (Knative's messages span lines)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "False":
            text = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
            return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or "no reason given"
    return None


def version_env(env: list[dict[str, Any]] | None, version: str) -> list[dict[str, Any]]:
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
