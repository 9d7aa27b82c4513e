"""The one rollout module: pure functions from an InferenceService (+ MLflow aliases) to a move.

A ``Move`` is what to send (an object to create, or merge patches in order) and which MLflow
aliases/tags to change once the API server accepted it. Nothing here talks to a cluster or a
registry. Every caller uses these same functions: ``kubectl model`` (canary, promote, rollback), the
analysis CronJob (``kubectl model analyze --apply``), the pipeline's deploy step
(``components/deploy.py``: :func:`deploy`) and ``mlstack demo``.

The first deploy: the chart renders the InferenceService as a template (ConfigMap
``<model>-isvc-template``, storageUri and version empty) instead of serving a path nothing wrote;
:func:`deploy` with no current object fills in the registered version's location and creates it.
Asking to serve the version already served is a no-op move everywhere (a re-run pipeline, a
repeated ``kubectl model canary``), never an error in one place and a no-op in another.

Phases, read from the spec (KServe Knative mode):

- ``stable``: no ``canaryTrafficPercent``; the latest revision takes all traffic.
- ``canary``: ``canaryTrafficPercent`` = N > 0; the latest revision (challenger) takes N %, the last
  rolled-out revision (champion) the rest.
- ``rolling-back``: percent 0 and the spec still names the challenger: all traffic is back on the
  champion revision, the champion spec is not restored yet.
- ``rolled-back``: percent 0 and the champion spec restored; traffic stays pinned to the champion.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlstack.core import isvc
from mlstack.core.errors import CheckFailed, UsageError

# the challenger version's share of traffic, in the registry too: a stream scorer has no
# InferenceService to read canaryTrafficPercent from, so it routes that share of keys by this tag
CANARY_PERCENT_TAG = "canary_percent"


@dataclass(frozen=True)
class AliasOp:
    """One registry change: set/delete an alias, or set a tag on a version."""

    action: str  # set_alias | delete_alias | set_tag
    model: str
    version: str
    key: str  # alias name or tag key
    value: str | None = None

    def describe(self) -> str:
        if self.action == "set_alias":
            return f"alias {self.key} -> {self.model} v{self.version}"
        if self.action == "delete_alias":
            return f"remove alias {self.key} (was v{self.version})"
        return f"tag {self.model} v{self.version} {self.key}={self.value}"


@dataclass
class Move:
    """What one lifecycle step sends and changes."""

    kind: str  # create | start | step | promote | rollback | noop
    name: str
    patches: list[dict[str, Any]]
    alias_ops: list[AliasOp] = field(default_factory=list)
    summary: str = ""
    warnings: list[str] = field(default_factory=list)
    create: dict[str, Any] | None = None  # the whole object, for kind "create"

    def result(self, obj: dict[str, Any] | None) -> dict[str, Any]:
        """The object after the move (what ``-f FILE`` prints)."""
        if self.create is not None:
            return copy.deepcopy(self.create)
        if obj is None:
            raise ValueError("a patch move needs the current object")
        for patch in self.patches:
            obj = isvc.merge_patch(obj, patch)
        return obj


@dataclass(frozen=True)
class CanaryState:
    """Where a service stands: phase, versions, traffic and KServe's revisions."""

    name: str
    model: str
    phase: str
    percent: int | None
    champion_version: str | None
    challenger_version: str | None
    serving_version: str | None
    revisions: isvc.Revisions
    aliases: dict[str, str]

    @property
    def canary_revision(self) -> str | None:
        return self.revisions.latest_ready if self.phase == "canary" else None

    @property
    def primary_revision(self) -> str | None:
        return self.revisions.latest_rolledout


def state_of(obj: dict[str, Any], aliases: dict[str, str] | None = None) -> CanaryState:
    """Read the phase and versions of one InferenceService."""
    aliases = dict(aliases or {})
    annotations = isvc.annotations_of(obj)
    percent = isvc.canary_percent(obj)
    serving = isvc.serving_version(obj)
    champion = annotations.get(isvc.ANN_CHAMPION_VERSION) or None
    challenger = annotations.get(isvc.ANN_CHALLENGER_VERSION) or None
    if percent is None:
        phase, champion, challenger = "stable", serving or aliases.get("champion"), None
    elif percent > 0:
        phase, challenger = "canary", serving
    elif challenger and serving == challenger and challenger != champion:
        phase = "rolling-back"
    else:
        phase, champion, challenger = "rolled-back", serving or champion, None
    return CanaryState(
        name=isvc.name_of(obj),
        model=isvc.registered_model(obj),
        phase=phase,
        percent=percent,
        champion_version=champion,
        challenger_version=challenger,
        serving_version=serving,
        revisions=isvc.revisions(obj),
        aliases=aliases,
    )


def check_percent(percent: int) -> None:
    """A canary's traffic share is 1 to 100 %."""
    if not 1 <= percent <= 100:
        raise UsageError(f"--percent must be between 1 and 100, got {percent}")


def check_start(obj: dict[str, Any], version: str, percent: int) -> list[str]:
    """Raise when starting a canary of ``version`` would be unsafe; return warnings to print."""
    check_percent(percent)
    current = isvc.canary_percent(obj)
    serving = isvc.serving_version(obj)
    if current is not None and current > 0:
        raise CheckFailed(
            f"a canary is in flight on {isvc.name_of(obj)!r} (version {serving} at {current}%); "
            "promote or roll it back before starting another"
        )
    revs = isvc.revisions(obj)
    if not revs.has_status:
        return [f"{isvc.name_of(obj)!r} has no status (a manifest, not a live object): readiness not checked"]
    if not revs.latest_rolledout:
        # KServe only splits traffic once a revision has been rolled out at 100%; before that the
        # new revision would take all traffic.
        raise CheckFailed(
            f"KServe has no rolled-out revision for {isvc.name_of(obj)!r} yet; wait until it is Ready"
        )
    if why := isvc.unsettled(revs):
        raise CheckFailed(f"{isvc.name_of(obj)!r} is still rolling out: {why}; wait until it is Ready")
    return []


def rollout_note(state: CanaryState) -> str | None:
    """What ``kubectl model status`` says when the service is not settled, with what to do."""
    why = isvc.unsettled(state.revisions)
    if why is None:
        return None
    if state.phase == "canary" and state.revisions.latest_created != state.revisions.latest_ready:
        return f"canary {why}; promote is refused until it is Ready, or: kubectl model rollback {state.name}"
    return why


def start_canary_patch(
    obj: dict[str, Any], version: str, storage_uri: str, percent: int, now: datetime | None = None
) -> dict[str, Any]:
    """Merge patch that serves ``version`` from ``storage_uri`` to ``percent`` % of traffic.

    Records the champion being replaced (version and storage URI) in annotations so a rollback can
    restore it. Call ``check_start`` first.
    """
    model = isvc.model_spec(obj)
    champion_version = isvc.serving_version(obj) or ""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {
            "annotations": {
                isvc.ANN_CHAMPION_VERSION: str(champion_version),
                isvc.ANN_CHAMPION_URI: model["storageUri"],
                isvc.ANN_CHALLENGER_VERSION: str(version),
                isvc.ANN_STARTED_AT: stamp,
            }
        },
        "spec": {
            "predictor": {
                "canaryTrafficPercent": int(percent),
                "model": {"storageUri": storage_uri, "env": isvc.version_env(model.get("env"), version)},
            }
        },
    }


def start(obj: dict[str, Any], aliases: dict[str, str], version: str, storage_uri: str, percent: int) -> Move:
    """Serve ``version`` to ``percent`` % next to the champion; it becomes the ``challenger``.

    The version already served (and no canary in flight): a no-op move.
    """
    state = state_of(obj, aliases)
    if state.phase == "canary" and state.challenger_version == str(version):
        return step(obj, aliases, percent)
    if (
        state.phase == "stable"
        and state.serving_version is not None
        and state.serving_version == str(version)
    ):
        return Move("noop", state.name, [], [], f"{state.model} v{version} is already served; nothing to do")
    warnings = check_start(obj, str(version), percent)
    patch = start_canary_patch(obj, str(version), storage_uri, percent)
    if not isvc.serving_version(obj) and state.champion_version:
        patch["metadata"]["annotations"][isvc.ANN_CHAMPION_VERSION] = state.champion_version
    # the percent first: a stream scorer that sees the alias (mlstack.serving.stream) reads the tag with it
    ops = [
        AliasOp("set_tag", state.model, str(version), CANARY_PERCENT_TAG, str(int(percent))),
        AliasOp("set_alias", state.model, str(version), "challenger"),
    ]
    return Move(
        "start",
        state.name,
        [patch],
        ops,
        f"canary {state.model} v{version} at {percent}% next to v{state.champion_version or '?'}",
        warnings,
    )


def step(obj: dict[str, Any], aliases: dict[str, str], percent: int) -> Move:
    """Change the traffic share of the canary in flight."""
    state = state_of(obj, aliases)
    if state.phase != "canary":
        raise CheckFailed(
            f"no canary in flight on {state.name!r} (phase {state.phase}); start one with --version"
        )
    check_percent(percent)
    patch = {"spec": {"predictor": {"canaryTrafficPercent": int(percent)}}}
    ops = []
    if state.challenger_version:
        ops.append(
            AliasOp("set_tag", state.model, state.challenger_version, CANARY_PERCENT_TAG, str(int(percent)))
        )
    return Move(
        "step",
        state.name,
        [patch],
        ops,
        f"canary v{state.challenger_version}: {state.percent}% -> {percent}%",
    )


def _check_canary_ready(state: CanaryState) -> list[str]:
    revs = state.revisions
    if not revs.has_status:
        return [f"{state.name!r} has no status (a manifest, not a live object): readiness not checked"]
    if revs.ready == "False":
        raise CheckFailed(f"{state.name!r} is not Ready ({revs.not_ready}); fix the canary or roll it back")
    if why := isvc.unsettled(revs):
        raise CheckFailed(f"the canary of {state.name!r} is not ready: {why}; wait, or roll it back")
    return []


def promote(obj: dict[str, Any], aliases: dict[str, str]) -> Move:
    """Send all traffic to the canary; aliases champion -> challenger version, previous -> old champion."""
    state = state_of(obj, aliases)
    if state.phase != "canary":
        raise CheckFailed(f"no canary in flight on {state.name!r} (phase {state.phase}); nothing to promote")
    warnings = _check_canary_ready(state)
    new, old = state.challenger_version, state.champion_version
    if not new:
        raise CheckFailed(
            f"cannot tell which model version the canary of {state.name!r} serves (no {isvc.VERSION_ENV})"
        )
    ops = [AliasOp("set_alias", state.model, new, "champion")]
    if old and old != new:
        ops.append(AliasOp("set_alias", state.model, old, "previous"))
    if aliases.get("challenger") == new:
        ops.append(AliasOp("delete_alias", state.model, new, "challenger"))
    patch = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    return Move(
        "promote", state.name, [patch], ops, f"promote {state.model} v{new} (was v{old or '?'})", warnings
    )


def rollback(obj: dict[str, Any], aliases: dict[str, str], reason: str) -> Move:
    """Pin traffic to the champion (percent 0), then restore the champion's spec; reject the challenger."""
    state = state_of(obj, aliases)
    if state.phase not in ("canary", "rolling-back"):
        hint = ""
        if state.phase == "stable" and aliases.get("previous"):
            hint = (
                f"; to revert the last promotion run: kubectl model canary {state.name} "
                f"--version {aliases['previous']} --percent 100, then promote"
            )
        raise CheckFailed(f"no canary in flight on {state.name!r} (phase {state.phase}){hint}")
    annotations = isvc.annotations_of(obj)
    champion_uri = annotations.get(isvc.ANN_CHAMPION_URI)
    bad = state.challenger_version
    patches: list[dict[str, Any]] = [{"spec": {"predictor": {"canaryTrafficPercent": 0}}}]
    warnings: list[str] = []
    if champion_uri:
        model = isvc.model_spec(obj)
        env = [e for e in model.get("env") or [] if e.get("name") != isvc.VERSION_ENV]
        if state.champion_version:
            env = isvc.version_env(env, state.champion_version)
        restore = {"storageUri": champion_uri, "env": env or None}
        patches.append(
            {
                "metadata": {"annotations": {isvc.ANN_REJECTED_VERSION: str(bad or "")}},
                "spec": {"predictor": {"model": restore}},
            }
        )
    else:
        warnings.append(
            f"no {isvc.ANN_CHAMPION_URI} annotation: traffic is pinned to the champion, "
            "but restore the champion's storageUri in your manifest before the next apply"
        )
    ops: list[AliasOp] = []
    if bad:
        if aliases.get("challenger") == bad:
            ops.append(AliasOp("delete_alias", state.model, bad, "challenger"))
        ops.append(AliasOp("set_tag", state.model, bad, "rejected", reason))
    return Move(
        "rollback",
        state.name,
        patches,
        ops,
        f"roll back {state.model} v{bad or '?'}; all traffic to v{state.champion_version or '?'}",
        warnings,
    )


def first_deploy(template: dict[str, Any], version: str, storage_uri: str) -> dict[str, Any]:
    """The InferenceService the chart's template describes, serving ``version`` from ``storage_uri``."""
    if not storage_uri:
        raise UsageError(f"no storage URI for version {version} of {isvc.registered_model(template)!r}")
    obj = copy.deepcopy(template)
    obj.pop("status", None)
    model = obj.setdefault("spec", {}).setdefault("predictor", {}).setdefault("model", {})
    model["storageUri"] = storage_uri
    model["env"] = isvc.version_env(model.get("env"), str(version))
    obj["spec"]["predictor"].pop("canaryTrafficPercent", None)
    isvc.model_spec(obj)  # the result must be a service mlstack manages
    return obj


def deploy(
    current: dict[str, Any] | None,
    template: dict[str, Any] | None,
    aliases: dict[str, str],
    version: str,
    storage_uri: str,
    percent: int,
) -> Move:
    """From "``version`` is registered" to "it is served": create the service, or canary the version.

    No service yet: created from ``template`` at 100 % (nothing to compare against), and the version
    becomes the ``champion``. A service: :func:`start` (a canary at ``percent``, or a no-op when the
    version is already served).
    """
    if current is not None:
        return start(current, aliases, version, storage_uri, percent)
    if template is None:
        raise CheckFailed(
            "the InferenceService does not exist and no template was found "
            "(the chart renders ConfigMap <model>-isvc-template; is the chart installed?)"
        )
    obj = first_deploy(template, version, storage_uri)
    model = isvc.registered_model(obj)
    return Move(
        "create",
        isvc.name_of(obj),
        [],
        [AliasOp("set_alias", model, str(version), "champion")],
        f"create {isvc.name_of(obj)} serving {model} v{version}",
        create=obj,
    )
