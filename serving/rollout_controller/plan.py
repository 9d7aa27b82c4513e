"""What the registry asks of one InferenceService: the next move of the one rollout module, or none.

Pure: from the object as the API server holds it and the registry's aliases *now* to a :class:`Plan`.
The reconciler turns a plan into ``rollout.start`` / ``promote`` / ``rollback`` (mlstack/core/rollout.py,
the functions ``kubectl model`` uses) and applies it. Level-triggered: each call plans at most one
move; the next call sees its result and plans the next, so any path of alias changes, however
delivered or lost, ends in the same state.

Desired state: ``champion`` is the primary, ``challenger`` (when set and not the champion) a canary
at the initial percent. No ``champion`` alias (or no registered model): the registry says nothing,
the service is left alone. From each phase (``rollout.state_of``):

- canary of vS: champion is vS -> promote; challenger is vS and the champion unchanged -> nothing
  (the analysis CronJob or the user moves the percent); challenger removed -> roll back and tag vS
  ``rejected``; challenger moved to another version or champion moved elsewhere -> roll back
  without rejecting (the next plan starts what the registry now says);
- rolling-back: finish the rollback;
- stable or rolled-back serving vS: champion is another version -> serve it (a canary at 100 %,
  promoted by the next plan once KServe has it ready); challenger set to another version -> start
  its canary; otherwise nothing.

Loops: ``kubectl model`` moves the service first and the aliases a moment later. A plan that would
undo a spec change another client made less than ``grace_seconds`` ago waits instead (the
registry is about to agree); once the grace is over the registry wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from mlstack.core import rollout


class Action(StrEnum):
    NOOP = "noop"
    WAIT = "wait"
    START = "start"  # a canary of the challenger at the initial percent
    SWITCH = "switch"  # the champion moved without a canary: serve it at 100 %, then promote
    PROMOTE = "promote"
    ROLLBACK = "rollback"


MOVES = (Action.START, Action.SWITCH, Action.PROMOTE, Action.ROLLBACK)


@dataclass(frozen=True, kw_only=True)
class Plan:
    action: Action
    reason: str
    version: str | None = None  # START/SWITCH: the version to serve
    percent: int | None = None  # START/SWITCH: its traffic share
    reject: bool = False  # ROLLBACK: the registry removed the challenger, tag it rejected
    retry_after: float | None = None  # WAIT: look again this much later


def _desired(state: rollout.CanaryState, champion: str, challenger: str | None, initial_percent: int) -> Plan:
    serving = state.serving_version
    if state.phase == "canary":
        if serving == champion:
            return Plan(action=Action.PROMOTE, reason=f"champion moved to v{serving}, the canary")
        primary = state.champion_version
        if serving == challenger and primary in (None, champion):
            return Plan(action=Action.NOOP, reason=f"canary of challenger v{serving} in flight")
        if serving == challenger:
            why = f"champion moved to v{champion} while v{serving} was in canary next to v{primary}"
            return Plan(action=Action.ROLLBACK, reason=why)
        if challenger is None:
            return Plan(action=Action.ROLLBACK, reason="no challenger alias in MLflow", reject=True)
        return Plan(action=Action.ROLLBACK, reason=f"challenger moved from v{serving} to v{challenger}")
    if state.phase == "rolling-back":
        return Plan(action=Action.ROLLBACK, reason=f"finish the rollback of v{serving}")
    if serving != champion:
        return Plan(
            action=Action.SWITCH,
            reason=f"champion moved to v{champion} (serving v{serving or '?'})",
            version=champion,
            percent=100,
        )
    if challenger is not None and challenger != serving:
        return Plan(
            action=Action.START,
            reason=f"challenger v{challenger} set next to champion v{champion}",
            version=challenger,
            percent=initial_percent,
        )
    return Plan(action=Action.NOOP, reason=f"serving champion v{champion}")


def plan(
    obj: dict[str, Any],
    aliases: dict[str, str] | None,
    *,
    initial_percent: int,
    foreign_change_age: float | None = None,
    grace_seconds: float = 0.0,
) -> Plan:
    """The next move for ``obj`` given the registry's aliases (None: the model is not registered).

    ``foreign_change_age``: seconds since another client last changed the spec (None: never).
    """
    if aliases is None:
        return Plan(action=Action.NOOP, reason="the registered model does not exist in MLflow")
    champion = aliases.get("champion")
    if champion is None:
        return Plan(action=Action.NOOP, reason="no champion alias: the registry does not say what to serve")
    challenger = aliases.get("challenger")
    if challenger == champion:
        challenger = None
    desired = _desired(rollout.state_of(obj, aliases), champion, challenger, initial_percent)
    if desired.action in MOVES and foreign_change_age is not None and foreign_change_age < grace_seconds:
        return Plan(
            action=Action.WAIT,
            reason=f"{desired.reason}; another client changed the service {foreign_change_age:.0f} s ago, "
            "waiting for the registry to catch up",
            retry_after=grace_seconds - foreign_change_age,
        )
    return desired


def registry_ops(decided: Plan, move: rollout.Move, aliases: dict[str, str]) -> list[rollout.AliasOp]:
    """The move's registry changes the controller makes: bookkeeping only, never against the registry.

    ``champion`` and ``challenger`` are the registry's to set: a set that is already so, or a set of
    ``challenger`` (which ``rollout.start`` adds), is dropped. Kept: the challenger's
    ``canary_percent`` tag (stream scorers route that share of keys by it), ``previous`` after a
    promotion, removing ``challenger`` once it became the champion, and the ``rejected`` tag when the
    registry removed the challenger. A champion served at 100 % on its way to promotion is no
    canary: its ``canary_percent`` tag is dropped.
    """
    kept = []
    for op in move.alias_ops:
        if op.action == "set_alias" and (op.key == "challenger" or aliases.get(op.key) == op.version):
            continue
        if decided.action == Action.SWITCH and op.action == "set_tag":
            continue
        if (
            decided.action == Action.ROLLBACK
            and not decided.reject
            and op.action in ("set_tag", "delete_alias")
        ):
            continue
        kept.append(op)
    return kept


def foreign_change_age(obj: dict[str, Any], manager: str, now: datetime) -> float | None:
    """Seconds since a client other than ``manager`` last wrote the spec (managedFields), or None.

    The API server stamps each manager's managedFields entry with the time it last changed a field
    (metav1.ManagedFieldsEntry.time, one-second resolution); status writes (subresource) and entries
    that own nothing under ``spec`` do not count.
    """
    latest: datetime | None = None
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager or entry.get("subresource") or not entry.get("time"):
            continue
        if "f:spec" not in (entry.get("fieldsV1") or {}):
            continue
        stamp = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
        latest = stamp if latest is None or stamp > latest else latest
    return None if latest is None else max(0.0, (now - latest).total_seconds())
