"""A canary's life under KServe's and Knative's own controllers, phase by phase.

InferenceService ``fraud`` (the chart's template, kind values) in namespace ``models`` goes through
the phases of ``tests/fixtures/kserve_recorded.py``, each move computed by ``mlstack.core.rollout``
and sent as the merge patches ``kubectl model`` sends. At each phase the test checks what KServe wrote
(traffic, rolled-out revisions, readiness), what Knative's Route routes, and what the state machine
reads from it; at the end it compares every object with its recorded file, which the unit tests of
the state machine use as input (``MLSTACK_RECORD_KSERVE=1`` rewrites the files).
"""

from __future__ import annotations

import difflib
import json
import os

import pytest
import yaml

from mlstack.core import rollout
from mlstack.core.errors import CheckFailed
from tests.fixtures.kserve_live import LiveInferenceServices, chart_isvc
from tests.fixtures.kserve_recorded import NAMESPACE, PHASES, RECORD_ENV, dump, normalize, path
from tests.fixtures.reconciler_platform import UNREADABLE_PREFIX

REV = "fraud-predictor-{:05d}".format


def uri(version: int) -> str:
    return f"s3://mlflow/1/models/m-{version}/artifacts"


@pytest.fixture(scope="module")
def models(reconcilers):
    """Namespace ``models`` (fixed: URLs in the recorded objects carry it), with the chart's runtime."""
    reconcilers.plane.kubectl(
        "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=300
    )
    live = LiveInferenceServices(reconcilers, reconcilers.namespace(NAMESPACE))
    live.install_model("fraud")
    yield live
    reconcilers.plane.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def send(live: LiveInferenceServices, move: rollout.Move, patches: slice = slice(None)) -> dict:
    """``move``'s merge patches (or the slice of them asked for), then the object once settled."""
    for patch in move.patches[patches]:
        live.plane.kubectl(
            "-n",
            live.namespace,
            "patch",
            "inferenceservice",
            move.name,
            "--type=merge",
            "-p",
            json.dumps(patch),
        )
    return live.settle(move.name)


def predictor(obj: dict) -> dict:
    return obj["status"]["components"]["predictor"]


def test_a_canary_life_as_kserve_and_knative_write_it(models, reconcilers):
    live, seen = models, {}
    route = lambda: reconcilers.route_traffic(NAMESPACE, "fraud")  # noqa: E731
    aliases = {"champion": "1"}

    obj = seen["stable"] = live.create(chart_isvc("fraud", NAMESPACE, "1", uri(1)))
    state = rollout.state_of(obj, aliases)
    assert (state.phase, state.primary_revision, state.revisions.up_to_date) == ("stable", REV(1), True)
    assert route() == {REV(1): 100}

    obj = seen["canary-10"] = send(live, rollout.start(obj, aliases, "2", uri(2), 10))
    assert route() == {REV(2): 10, REV(1): 90}
    state = rollout.state_of(obj, {**aliases, "challenger": "2"})
    assert (state.phase, state.canary_revision, state.primary_revision) == ("canary", REV(2), REV(1))
    assert state.revisions.up_to_date

    obj = seen["canary-50"] = send(live, rollout.step(obj, aliases, 50))
    assert route() == {REV(2): 50, REV(1): 50}

    obj = seen["promoted"] = send(live, rollout.promote(obj, {**aliases, "challenger": "2"}))
    assert (predictor(obj)["latestRolledoutRevision"], predictor(obj)["previousRolledoutRevision"]) == (
        REV(2),
        REV(1),
    )
    assert route() == {REV(2): 100}
    aliases = {"champion": "2", "previous": "1"}
    assert rollout.state_of(obj, aliases).phase == "stable"

    # a canary whose pods never become Ready: Knative keeps the latest target on the last ready revision
    obj = seen["canary-unreadable"] = send(
        live, rollout.start(obj, aliases, "3", f"{UNREADABLE_PREFIX}m-3", 20)
    )
    assert (predictor(obj)["latestCreatedRevision"], predictor(obj)["latestReadyRevision"]) == (
        REV(3),
        REV(2),
    )
    assert route() == {REV(2): 100}
    with pytest.raises(CheckFailed, match="not ready"):
        rollout.promote(obj, {**aliases, "challenger": "3"})

    move = rollout.rollback(obj, {**aliases, "challenger": "3"}, "pods never Ready")
    obj = seen["rolling-back"] = send(live, move, slice(0, 1))
    assert rollout.state_of(obj, aliases).phase == "rolling-back"
    assert route() == {REV(2): 100}
    obj = seen["rolled-back"] = send(live, move, slice(1, None))
    # the champion's spec restored is a new revision (00004, serving v2 again) at 0 %; 00002 keeps 100 %
    assert route() == {REV(4): 0, REV(2): 100}
    assert rollout.state_of(obj, aliases).phase == "rolled-back"

    obj = seen["canary-100"] = send(live, rollout.start(obj, aliases, "4", uri(4), 100))
    # KServe counts a revision at 100 % as rolled out (inference_service_status.go PropagateStatus).
    # While 00005 was not Ready yet, Knative sent the 100 % "latest" share to the latest Ready
    # revision, 00004 (the restored champion), so KServe recorded 00004 as rolled out on the way:
    # the previous rolled-out revision is 00004, not 00002 (both serve v2)
    assert (predictor(obj)["latestRolledoutRevision"], predictor(obj)["previousRolledoutRevision"]) == (
        REV(5),
        REV(4),
    )
    assert route() == {REV(5): 100}

    # promoting from 100 % changes the InferenceService's spec but not the Knative Service's, so
    # KServe's status.observedGeneration (copied from the Knative Service) stays one behind for good
    obj = seen["promoted-from-100"] = send(live, rollout.promote(obj, {**aliases, "challenger": "4"}))
    assert obj["metadata"]["generation"] == obj["status"]["observedGeneration"] + 1
    aliases = {"champion": "4", "previous": "2"}
    state = rollout.state_of(obj, aliases)
    assert (state.phase, state.revisions.up_to_date) == ("stable", True)
    assert rollout.start(obj, aliases, "5", uri(5), 10).kind == "start"  # the next canary is not refused

    broken = chart_isvc("fraud", NAMESPACE, "1", f"{UNREADABLE_PREFIX}m-1")
    broken["metadata"]["name"] = "broken"
    seen["never-ready"] = live.create(broken, ready=False)
    with pytest.raises(CheckFailed, match="no rolled-out revision"):
        rollout.start(seen["never-ready"], {}, "2", uri(2), 10)

    _compare_with_recorded(seen)


def _compare_with_recorded(seen: dict[str, dict]) -> None:
    assert set(seen) == set(PHASES)
    drift = []
    for phase, obj in seen.items():
        text = dump(normalize(obj), phase)
        if os.environ.get(RECORD_ENV, "") not in ("", "0"):
            path(phase).parent.mkdir(exist_ok=True)
            path(phase).write_text(text)
            continue
        old = path(phase).read_text() if path(phase).exists() else ""
        if old != text:
            diff = difflib.unified_diff(
                old.splitlines(), text.splitlines(), f"recorded/{phase}", "now", lineterm=""
            )
            drift.append("\n".join(diff))
    assert not drift, (
        f"KServe/Knative now write something else than the recorded objects ({RECORD_ENV}=1 rewrites them; "
        "review what changed, the unit tests read these):\n" + "\n".join(drift)
    )


def test_recorded_objects_are_valid_yaml_of_one_service_each():
    for phase in PHASES:
        obj = yaml.safe_load(path(phase).read_text())
        assert obj["kind"] == "InferenceService" and obj["metadata"]["namespace"] == NAMESPACE, phase
