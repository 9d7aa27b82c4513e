"""The rollout controller's plan: from (InferenceService, registry aliases) to the next move.

The objects are InferenceServices as KServe's and Knative's own controllers left them at each phase
of a canary's life (tests/fixtures/kserve_recorded.py, recorded and re-checked by
tests/integration/test_kserve_phases.py), so every status the plan reads is one KServe wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlstack.core import rollout
from mlstack.serving.rollout_controller.plan import Action, foreign_change_age, plan, registry_ops
from tests.fixtures.kserve_recorded import recorded


def uri(version: str) -> str:
    return f"s3://mlflow/1/models/m-{version}/artifacts"


STABLE_V1 = recorded("stable")  # v1 served, rolled out
CANARY_V2 = recorded("canary-10")  # v2 at 10 % next to v1
ROLLING_BACK_V3 = recorded("rolling-back")  # v2 promoted, v3's canary at 0 %: rollback's first patch only
ROLLED_BACK_TO_V2 = recorded("rolled-back")  # v2 restored, v3 rejected


def decide(obj, aliases, **kwargs):
    return plan(obj, aliases, initial_percent=10, **kwargs)


def test_phases_are_the_ones_rollout_reads():
    assert [
        rollout.state_of(o).phase for o in (STABLE_V1, CANARY_V2, ROLLING_BACK_V3, ROLLED_BACK_TO_V2)
    ] == [
        "stable",
        "canary",
        "rolling-back",
        "rolled-back",
    ]


@pytest.mark.parametrize(
    ("obj", "aliases", "action", "version", "percent", "reject"),
    [
        # the registry says nothing: leave the service alone
        (STABLE_V1, None, Action.NOOP, None, None, False),
        (STABLE_V1, {}, Action.NOOP, None, None, False),
        (STABLE_V1, {"challenger": "2"}, Action.NOOP, None, None, False),
        (CANARY_V2, {"challenger": "3"}, Action.NOOP, None, None, False),
        # stable
        (STABLE_V1, {"champion": "1"}, Action.NOOP, None, None, False),
        (STABLE_V1, {"champion": "1", "challenger": "1"}, Action.NOOP, None, None, False),
        (STABLE_V1, {"champion": "1", "challenger": "2"}, Action.START, "2", 10, False),
        (STABLE_V1, {"champion": "3"}, Action.SWITCH, "3", 100, False),
        (STABLE_V1, {"champion": "3", "challenger": "2"}, Action.SWITCH, "3", 100, False),
        # canary of v2 next to v1
        (CANARY_V2, {"champion": "1", "challenger": "2"}, Action.NOOP, None, None, False),
        (CANARY_V2, {"champion": "2", "challenger": "2"}, Action.PROMOTE, None, None, False),
        (CANARY_V2, {"champion": "2"}, Action.PROMOTE, None, None, False),
        (CANARY_V2, {"champion": "1"}, Action.ROLLBACK, None, None, True),
        (CANARY_V2, {"champion": "1", "challenger": "3"}, Action.ROLLBACK, None, None, False),
        (CANARY_V2, {"champion": "3", "challenger": "2"}, Action.ROLLBACK, None, None, False),
        # half a rollback: finish it
        (ROLLING_BACK_V3, {"champion": "2", "challenger": "3"}, Action.ROLLBACK, None, None, False),
        # rolled back: a new challenger starts, the old one is not restarted by the controller
        (ROLLED_BACK_TO_V2, {"champion": "2"}, Action.NOOP, None, None, False),
        (ROLLED_BACK_TO_V2, {"champion": "2", "challenger": "4"}, Action.START, "4", 10, False),
        (ROLLED_BACK_TO_V2, {"champion": "1"}, Action.SWITCH, "1", 100, False),
    ],
)
def test_the_registry_decides_the_next_move(obj, aliases, action, version, percent, reject):
    decided = decide(obj, aliases)
    assert (decided.action, decided.version, decided.percent, decided.reject) == (
        action,
        version,
        percent,
        reject,
    )


def test_every_path_of_alias_changes_ends_where_the_registry_says():
    """Apply plan after plan (KServe catching up in between) until nothing is left to do."""

    def settle(obj, aliases):
        for _ in range(6):
            decided = decide(obj, aliases)
            if decided.action == Action.NOOP:
                return obj
            if decided.action in (Action.START, Action.SWITCH):
                move = rollout.start(obj, aliases, decided.version, uri(decided.version), decided.percent)
            elif decided.action == Action.PROMOTE:
                move = rollout.promote(obj, aliases)
            else:
                move = rollout.rollback(obj, aliases, decided.reason)
            obj = move.result(obj)
            # KServe and Knative catch up (kserve v0.20.0 ksvc_reconciler.go createKnativeService):
            # a new revision for the new spec gets the canary share (all of it without one), the
            # last rolled-out revision the rest; without a canary share the new one is rolled out
            spec = obj["spec"]["predictor"]
            percent = spec.get("canaryTrafficPercent")
            revision = f"rev-{spec['model']['storageUri']}-{percent}"
            predictor = obj["status"]["components"]["predictor"]
            previous = predictor["latestRolledoutRevision"]
            share = 100 if percent is None else percent
            traffic = [{"revisionName": revision, "latestRevision": True, "percent": share}]
            if share < 100:
                traffic.append({"revisionName": previous, "latestRevision": False, "percent": 100 - share})
            predictor.update(
                latestCreatedRevision=revision,
                latestReadyRevision=revision,
                latestRolledoutRevision=revision if percent is None else previous,
                traffic=traffic,
            )
        raise AssertionError(f"no fixed point for {aliases}")

    for aliases, served, percent in [
        ({"champion": "1", "challenger": "2"}, "2", 10),
        ({"champion": "3"}, "3", None),
        ({"champion": "3", "challenger": "2"}, "2", 10),
    ]:
        for start in (STABLE_V1, CANARY_V2, ROLLED_BACK_TO_V2):
            end = settle(start, aliases)
            state = rollout.state_of(end, aliases)
            assert (state.serving_version, state.percent) == (served, percent), (aliases, state.phase)


def test_another_clients_fresh_change_is_not_undone_until_the_grace_is_over():
    aliases = {"champion": "1"}  # kubectl model started v2, its alias move is on its way
    waiting = decide(CANARY_V2, aliases, foreign_change_age=3.0, grace_seconds=30)
    assert (waiting.action, waiting.retry_after) == (Action.WAIT, 27.0)
    assert decide(CANARY_V2, aliases, foreign_change_age=31.0, grace_seconds=30).action == Action.ROLLBACK
    # nothing to undo: no waiting
    assert (
        decide(
            CANARY_V2, {"champion": "1", "challenger": "2"}, foreign_change_age=1.0, grace_seconds=30
        ).action
        == Action.NOOP
    )


def test_the_controller_never_sets_champion_or_challenger_itself():
    aliases = {"champion": "1", "challenger": "2"}
    start = rollout.start(STABLE_V1, aliases, "2", uri("2"), 10)
    # the challenger alias is the registry's; its canary_percent tag is what stream scorers route by
    ops = registry_ops(decide(STABLE_V1, aliases), start, aliases)
    assert [(op.action, op.key, op.version, op.value) for op in ops] == [
        ("set_tag", "canary_percent", "2", "10")
    ]
    # the champion served at 100 % on its way to promotion is not tagged as a canary
    aliases = {"champion": "3"}
    switch = rollout.start(STABLE_V1, aliases, "3", uri("3"), 100)
    assert registry_ops(decide(STABLE_V1, aliases), switch, aliases) == []
    aliases = {"champion": "2", "challenger": "2"}
    promote = rollout.promote(CANARY_V2, aliases)
    kept = [
        (op.action, op.key, op.version) for op in registry_ops(decide(CANARY_V2, aliases), promote, aliases)
    ]
    assert kept == [("set_alias", "previous", "1"), ("delete_alias", "challenger", "2")]
    # the challenger moved on: rolling back v2 neither tags it rejected nor touches the new challenger
    aliases = {"champion": "1", "challenger": "3"}
    back = rollout.rollback(CANARY_V2, aliases, "x")
    assert registry_ops(decide(CANARY_V2, aliases), back, aliases) == []
    # the challenger was removed: v2 is tagged rejected
    aliases = {"champion": "1"}
    back = rollout.rollback(CANARY_V2, aliases, "no challenger")
    assert [(op.action, op.key) for op in registry_ops(decide(CANARY_V2, aliases), back, aliases)] == [
        ("set_tag", "rejected")
    ]


def test_foreign_change_age_reads_managed_fields_of_the_spec_only():
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    stamp = (now - timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = (now - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {
        "metadata": {
            "managedFields": [
                {
                    "manager": "kubectl-model",
                    "operation": "Update",
                    "time": stamp,
                    "fieldsV1": {"f:spec": {}},
                },
                # ours, a status write and a metadata-only write do not count
                {"manager": "mlstack-rollout-controller", "time": recent, "fieldsV1": {"f:spec": {}}},
                {"manager": "manager", "subresource": "status", "time": recent, "fieldsV1": {"f:status": {}}},
                {"manager": "kserve", "time": recent, "fieldsV1": {"f:metadata": {"f:finalizers": {}}}},
            ]
        }
    }
    assert foreign_change_age(obj, "mlstack-rollout-controller", now) == 20.0
    assert foreign_change_age({"metadata": {}}, "x", now) is None
