"""The canary state machine on InferenceService objects as KServe's and Knative's controllers wrote them."""

from __future__ import annotations

import pytest
import yaml

from mlstack.core import isvc, rollout
from mlstack.core.errors import CheckFailed, UsageError
from tests.fixtures.kserve_recorded import recorded, without_status
from tests.fixtures.kserve_schema import assert_valid_isvc, validate_isvc

ALIASES = {"champion": "1", "challenger": "2"}

# Status as KServe documents it mid-canary (canary rollout example: 10% to the new revision, 90% to
# the last rolled-out revision tagged "prev").
DOC_CANARY = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: fraud
  namespace: models
  generation: 2
  annotations:
    serving.mlstack.io/champion-version: "1"
    serving.mlstack.io/champion-storage-uri: s3://mlflow/m-1
    serving.mlstack.io/challenger-version: "2"
spec:
  predictor:
    canaryTrafficPercent: 10
    model:
      modelFormat: {name: mlstack-mlflow}
      storageUri: s3://mlflow/m-2
      env: [{name: MLSTACK_MODEL_VERSION, value: "2"}]
status:
  observedGeneration: 2
  url: http://fraud.models.example.com
  conditions:
  - {type: IngressReady, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: PredictorReady, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Ready, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}
  components:
    predictor:
      latestCreatedRevision: fraud-predictor-00002
      latestReadyRevision: fraud-predictor-00002
      latestRolledoutRevision: fraud-predictor-00001
      traffic:
      - {latestRevision: true, percent: 10, revisionName: fraud-predictor-00002}
      - {latestRevision: false, percent: 90, revisionName: fraud-predictor-00001, tag: prev,
         url: "http://prev-fraud-predictor.models.example.com"}
      url: http://fraud-predictor.models.example.com
"""


def live(phase: str) -> dict:
    """The InferenceService KServe and Knative left at ``phase`` (tests/fixtures/kserve_recorded.py).

    The assertions are on what our code reads from that status and on what it would send (patches,
    spec, annotations, alias moves); what the controllers then do with the patches is
    tests/integration/test_kserve_phases.py, which also keeps these recorded objects honest.
    """
    return recorded(phase)


def apply(obj: dict, move: rollout.Move) -> dict:
    """``obj`` after ``move``'s patches, as the API server merges them (its status unchanged)."""
    for patch in move.patches:
        assert_valid_isvc(patch, patch=True)
    after = move.result(obj)
    assert_valid_isvc(after)
    return after


def test_documented_canary_status_is_read_as_a_canary_in_flight():
    obj = yaml.safe_load(DOC_CANARY)
    assert validate_isvc(obj) == []
    state = rollout.state_of(obj, ALIASES)
    assert (state.phase, state.percent) == ("canary", 10)
    assert (state.champion_version, state.challenger_version) == ("1", "2")
    assert (state.primary_revision, state.canary_revision) == (
        "fraud-predictor-00001",
        "fraud-predictor-00002",
    )


def test_start_serves_new_version_to_the_percent_and_records_the_champion():
    obj = live("stable")
    move = rollout.start(obj, {"champion": "1"}, "2", "s3://mlflow/m-2", 10)
    assert move.warnings == []
    after = apply(obj, move)
    assert after["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert after["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/m-2"
    annotations = after["metadata"]["annotations"]
    assert annotations[isvc.ANN_CHAMPION_VERSION] == "1"
    assert annotations[isvc.ANN_CHAMPION_URI] == "s3://mlflow/1/models/m-1/artifacts"
    assert [op.describe() for op in move.alias_ops] == [
        "tag fraud v2 canary_percent=10",  # the stream scorer's share of keys
        "alias challenger -> fraud v2",
    ]
    # the rest of the predictor spec is untouched
    assert after["spec"]["predictor"]["logger"] == obj["spec"]["predictor"]["logger"]
    assert after["spec"]["predictor"]["model"]["resources"] == obj["spec"]["predictor"]["model"]["resources"]


def test_start_keeps_other_env_vars():
    obj = live("stable")
    obj["spec"]["predictor"]["model"]["env"].insert(0, {"name": "LOG_LEVEL", "value": "debug"})
    after = apply(obj, rollout.start(obj, {}, "2", "s3://mlflow/m-2", 10))
    assert after["spec"]["predictor"]["model"]["env"] == [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "MLSTACK_MODEL_VERSION", "value": "2"},
    ]


def test_a_canary_in_flight_is_read_from_what_kserve_wrote():
    state = rollout.state_of(live("canary-10"), ALIASES)
    assert (state.phase, state.percent, state.champion_version, state.challenger_version) == (
        "canary",
        10,
        "1",
        "2",
    )
    assert (state.primary_revision, state.canary_revision) == (
        "fraud-predictor-00001",
        "fraud-predictor-00002",
    )
    assert state.revisions.up_to_date and rollout.rollout_note(state) is None


def test_the_same_version_again_steps_then_promote_moves_aliases():
    obj = live("canary-10")
    step = rollout.start(obj, ALIASES, "2", "s3://mlflow/m-2", 50)  # same version = step
    assert (step.kind, step.patches) == ("step", [{"spec": {"predictor": {"canaryTrafficPercent": 50}}}])
    move = rollout.promote(live("canary-50"), ALIASES)
    assert move.patches == [{"spec": {"predictor": {"canaryTrafficPercent": None}}}]
    assert "canaryTrafficPercent" not in apply(live("canary-50"), move)["spec"]["predictor"]
    assert [op.describe() for op in move.alias_ops] == [
        "alias champion -> fraud v2",
        "alias previous -> fraud v1",
        "remove alias challenger (was v2)",
    ]
    promoted = rollout.state_of(live("promoted"), {"champion": "2"})
    assert (promoted.phase, promoted.primary_revision) == ("stable", "fraud-predictor-00002")


def test_rollback_pins_champion_then_restores_its_spec():
    obj = live("canary-10")
    move = rollout.rollback(obj, ALIASES, "accuracy dropped")
    assert move.patches[0] == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    after = apply(obj, move)
    model = after["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://mlflow/1/models/m-1/artifacts"
    assert model["env"] == [{"name": "MLSTACK_MODEL_VERSION", "value": "1"}]
    assert after["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert [op.describe() for op in move.alias_ops] == [
        "remove alias challenger (was v2)",
        "tag fraud v2 rejected=accuracy dropped",
    ]
    # what KServe wrote after each of the two patches (a rollback of the unreadable v3 canary)
    assert rollout.state_of(live("rolling-back"), {"champion": "2"}).phase == "rolling-back"
    rolled_back = live("rolled-back")
    assert rollout.state_of(rolled_back, {"champion": "2"}).phase == "rolled-back"
    # a new canary may start from there
    restarted = apply(rolled_back, rollout.start(rolled_back, {"champion": "2"}, "3", "s3://mlflow/m-3", 10))
    assert restarted["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert restarted["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/m-3"


def test_start_refused_while_a_canary_is_in_flight():
    with pytest.raises(CheckFailed, match="canary is in flight"):
        rollout.start(live("canary-10"), ALIASES, "3", "s3://mlflow/m-3", 10)


def test_a_canary_whose_pods_never_get_ready_cannot_be_promoted_and_says_why():
    obj = live("canary-unreadable")
    aliases = {"champion": "2", "challenger": "3"}
    with pytest.raises(CheckFailed, match="not ready") as refused:
        rollout.promote(obj, aliases)
    # KServe's own failure report (modelStatus.lastFailureInfo) is in the message
    assert "revision fraud-predictor-00003 is not Ready (ModelLoadFailed, exit code 1)" in str(refused.value)
    note = rollout.rollout_note(rollout.state_of(obj, aliases))
    assert note == (
        "canary revision fraud-predictor-00003 is not Ready (ModelLoadFailed, exit code 1); latest Ready: "
        "fraud-predictor-00002; promote is refused until it is Ready, or: kubectl model rollback fraud"
    )
    # rolling back a broken canary is always allowed
    assert rollout.rollback(obj, aliases, "broken").kind == "rollback"


def test_promoting_a_canary_at_100_percent_leaves_a_rolled_out_service():
    """KServe's observedGeneration is the Knative Service's: after this promotion it stays one behind."""
    obj = live("promoted-from-100")
    assert obj["metadata"]["generation"] == obj["status"]["observedGeneration"] + 1
    # the next canary is not refused as "still rolling out"
    assert rollout.start(obj, {"champion": "4"}, "5", "s3://mlflow/m-5", 10).kind == "start"
    state = rollout.state_of(obj, {"champion": "4"})
    assert (state.phase, state.revisions.up_to_date, rollout.rollout_note(state)) == ("stable", True, None)


def test_a_canary_at_100_percent_is_rolled_out_by_kserve():
    state = rollout.state_of(live("canary-100"), {"champion": "2", "challenger": "4"})
    assert (state.phase, state.percent, state.primary_revision) == ("canary", 100, "fraud-predictor-00005")
    assert rollout.promote(live("canary-100"), {"champion": "2", "challenger": "4"}).kind == "promote"


def test_promote_and_rollback_refused_without_a_canary():
    obj = live("stable")
    with pytest.raises(CheckFailed, match="nothing to promote"):
        rollout.promote(obj, ALIASES)
    with pytest.raises(CheckFailed, match="--version 0 --percent 100"):
        rollout.rollback(obj, {"champion": "1", "previous": "0"}, "why")


def test_start_refused_before_kserve_rolled_out_anything():
    obj = live("never-ready")
    assert obj["status"]["components"]["predictor"]["latestCreatedRevision"] == "broken-predictor-00001"
    with pytest.raises(CheckFailed, match="wait until it is Ready"):
        rollout.start(obj, {}, "2", "s3://mlflow/m-2", 10)


def test_start_of_the_served_version_is_a_noop_and_bad_percent_refused():
    """One behaviour everywhere (kubectl model, the deploy step): serving what is served changes nothing."""
    obj = live("stable")
    move = rollout.start(obj, {}, "1", "s3://mlflow/m-1", 10)
    assert move.kind == "noop" and move.patches == [] and move.alias_ops == []
    assert move.result(obj) == obj
    with pytest.raises(UsageError):
        rollout.start(obj, {}, "2", "s3://mlflow/m-2", 0)


def test_manifest_without_status_is_allowed_with_a_warning():
    manifest = without_status(live("stable"))
    move = rollout.start(manifest, {}, "2", "s3://mlflow/m-2", 10)
    assert move.warnings and "readiness not checked" in move.warnings[0]
    assert_valid_isvc(move.result(manifest))


def test_a_status_from_before_kserve_saw_the_patch_is_not_up_to_date():
    """The patch is stored, KServe has not rewritten the status yet: the old share shows it."""
    obj = apply(live("stable"), rollout.start(live("stable"), {}, "2", "s3://mlflow/m-2", 10))
    revs = isvc.revisions(obj)
    assert (revs.wanted_latest_share, revs.latest_share, revs.up_to_date) == (10, 100, False)


def test_validator_rejects_what_kserve_would_not_accept():
    obj = without_status(live("stable"))
    obj["spec"]["predictor"]["canaryTrafficPrecent"] = 10
    obj["spec"]["predictor"]["model"]["storageUri"] = 5
    del obj["spec"]["predictor"]["model"]["modelFormat"]
    errors = validate_isvc(obj)
    assert any("canaryTrafficPrecent: unknown field" in e for e in errors)
    assert any("storageUri: expected str" in e for e in errors)
    assert any("modelFormat: required" in e for e in errors)
    assert validate_isvc({"spec": {"predictor": {"canaryTrafficPercent": None}}}, patch=True) == []
    assert validate_isvc({"spec": {"predictor": {"canaryTrafficPercent": None}}}) != []
