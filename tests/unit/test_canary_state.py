"""The canary state machine on InferenceService objects shaped like KServe writes them."""

from __future__ import annotations

import pytest
import yaml

from mlstack.core import isvc, rollout
from mlstack.core.errors import CheckFailed, UsageError
from tests.fixtures.kserve_schema import assert_valid_isvc, validate_isvc
from tests.fixtures.kserve_standin import FakeKServe, base_isvc

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


@pytest.fixture
def live():
    """A stable service (v1 rolled out) and the KServe stand-in that reconciles it.

    The stand-in only moves ``status`` the way KServe would, so ``rollout`` reads the next state from a
    KServe-shaped object; the assertions are on what our code writes (patches, spec, annotations,
    alias moves) and on the state it reads back, never on the stand-in's traffic table. What the real
    API server stores is tests/integration/test_kubectl_model.py."""
    kserve = FakeKServe()
    obj = base_isvc()
    obj["metadata"]["generation"] = 1
    return kserve, kserve.reconcile(obj)


def apply(kserve: FakeKServe, obj: dict, move: rollout.Move) -> dict:
    for patch in move.patches:
        assert_valid_isvc(patch, patch=True)
        obj = isvc.merge_patch(obj, patch)
        obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        obj = kserve.reconcile(obj)
        assert_valid_isvc(obj)
    return obj


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


def test_start_serves_new_version_to_the_percent_and_records_the_champion(live):
    kserve, obj = live
    move = rollout.start(obj, {"champion": "1"}, "2", "s3://mlflow/m-2", 10)
    after = apply(kserve, obj, move)
    assert after["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert after["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/m-2"
    annotations = after["metadata"]["annotations"]
    assert annotations[isvc.ANN_CHAMPION_VERSION] == "1"
    assert annotations[isvc.ANN_CHAMPION_URI] == "s3://mlflow/m-1"
    assert [op.describe() for op in move.alias_ops] == [
        "tag fraud v2 canary_percent=10",  # the stream scorer's share of keys
        "alias challenger -> fraud v2",
    ]
    # the rest of the predictor spec is untouched
    assert after["spec"]["predictor"]["logger"] == obj["spec"]["predictor"]["logger"]
    assert after["spec"]["predictor"]["model"]["resources"] == obj["spec"]["predictor"]["model"]["resources"]


def test_start_keeps_other_env_vars(live):
    kserve, obj = live
    obj["spec"]["predictor"]["model"]["env"].insert(0, {"name": "LOG_LEVEL", "value": "debug"})
    after = apply(kserve, obj, rollout.start(obj, {}, "2", "s3://mlflow/m-2", 10))
    assert after["spec"]["predictor"]["model"]["env"] == [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "MLSTACK_MODEL_VERSION", "value": "2"},
    ]


def test_step_then_promote_moves_all_traffic_and_aliases(live):
    kserve, obj = live
    obj = apply(kserve, obj, rollout.start(obj, {"champion": "1"}, "2", "s3://mlflow/m-2", 10))
    obj = apply(kserve, obj, rollout.start(obj, ALIASES, "2", "s3://mlflow/m-2", 50))  # same version = step
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 50
    move = rollout.promote(obj, ALIASES)
    assert move.patches == [{"spec": {"predictor": {"canaryTrafficPercent": None}}}]
    obj = apply(kserve, obj, move)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    status = obj["status"]["components"]["predictor"]
    assert status["latestRolledoutRevision"] == "fraud-predictor-00002"
    assert status["previousRolledoutRevision"] == "fraud-predictor-00001"
    assert [op.describe() for op in move.alias_ops] == [
        "alias champion -> fraud v2",
        "alias previous -> fraud v1",
        "remove alias challenger (was v2)",
    ]
    assert rollout.state_of(obj, {"champion": "2"}).phase == "stable"


def test_rollback_pins_champion_then_restores_its_spec(live):
    kserve, obj = live
    obj = apply(kserve, obj, rollout.start(obj, {"champion": "1"}, "2", "s3://mlflow/m-2", 20))
    move = rollout.rollback(obj, ALIASES, "accuracy dropped")
    assert move.patches[0] == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    after_first = kserve.reconcile(isvc.merge_patch(obj, move.patches[0]))
    assert rollout.state_of(after_first, ALIASES).phase == "rolling-back"
    obj = apply(kserve, obj, move)
    model = obj["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://mlflow/m-1"
    assert model["env"] == [{"name": "MLSTACK_MODEL_VERSION", "value": "1"}]
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert rollout.state_of(obj, {"champion": "1"}).phase == "rolled-back"
    assert [op.describe() for op in move.alias_ops] == [
        "remove alias challenger (was v2)",
        "tag fraud v2 rejected=accuracy dropped",
    ]
    # a new canary may start from here
    restarted = apply(kserve, obj, rollout.start(obj, {"champion": "1"}, "3", "s3://mlflow/m-3", 10))
    assert restarted["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert restarted["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/m-3"


def test_start_refused_while_a_canary_is_in_flight(live):
    kserve, obj = live
    obj = apply(kserve, obj, rollout.start(obj, {}, "2", "s3://mlflow/m-2", 10))
    with pytest.raises(CheckFailed, match="canary is in flight"):
        rollout.start(obj, ALIASES, "3", "s3://mlflow/m-3", 10)


def test_promote_refused_while_the_canary_revision_is_not_ready(live):
    kserve, obj = live
    kserve.fail_next = True
    obj = apply(kserve, obj, rollout.start(obj, {}, "2", "s3://mlflow/m-2", 10))
    assert obj["status"]["components"]["predictor"]["latestReadyRevision"] == "fraud-predictor-00001"
    with pytest.raises(CheckFailed, match="not ready"):
        rollout.promote(obj, ALIASES)
    # rolling back a broken canary is always allowed
    assert rollout.rollback(obj, ALIASES, "broken").kind == "rollback"


def test_promote_and_rollback_refused_without_a_canary(live):
    _, obj = live
    with pytest.raises(CheckFailed, match="nothing to promote"):
        rollout.promote(obj, ALIASES)
    with pytest.raises(CheckFailed, match="--version 0 --percent 100"):
        rollout.rollback(obj, {"champion": "1", "previous": "0"}, "why")


def test_start_refused_before_kserve_rolled_out_anything():
    obj = base_isvc()
    obj["status"] = {"components": {"predictor": {"latestCreatedRevision": "fraud-predictor-00001"}}}
    with pytest.raises(CheckFailed, match="wait until it is Ready"):
        rollout.start(obj, {}, "2", "s3://mlflow/m-2", 10)


def test_start_of_the_served_version_is_a_noop_and_bad_percent_refused(live):
    """One behaviour everywhere (kubectl model, the deploy step): serving what is served changes nothing."""
    _, obj = live
    move = rollout.start(obj, {}, "1", "s3://mlflow/m-1", 10)
    assert move.kind == "noop" and move.patches == [] and move.alias_ops == []
    assert move.result(obj) == obj
    with pytest.raises(UsageError):
        rollout.start(obj, {}, "2", "s3://mlflow/m-2", 0)


def test_manifest_without_status_is_allowed_with_a_warning():
    move = rollout.start(base_isvc(), {}, "2", "s3://mlflow/m-2", 10)
    assert move.warnings and "readiness not checked" in move.warnings[0]
    assert_valid_isvc(move.result(base_isvc()))


def test_validator_rejects_what_kserve_would_not_accept():
    obj = base_isvc()
    obj["spec"]["predictor"]["canaryTrafficPrecent"] = 10
    obj["spec"]["predictor"]["model"]["storageUri"] = 5
    del obj["spec"]["predictor"]["model"]["modelFormat"]
    errors = validate_isvc(obj)
    assert any("canaryTrafficPrecent: unknown field" in e for e in errors)
    assert any("storageUri: expected str" in e for e in errors)
    assert any("modelFormat: required" in e for e in errors)
    assert validate_isvc({"spec": {"predictor": {"canaryTrafficPercent": None}}}, patch=True) == []
    assert validate_isvc({"spec": {"predictor": {"canaryTrafficPercent": None}}}) != []
