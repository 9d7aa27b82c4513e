"""`make demo`'s canary verdict is the canary CronJob's: same function, same window, same store.

The CronJob runs ``kubectl model analyze NAME`` (``helm/mlstack/templates/canary-analysis.yaml``),
which reads the InferenceService's canary state and calls ``monitoring/canary/job.py``
``analyze_service``. Here the demo's ``analyze_canary`` and that command (on the manifest the demo
writes, ``-f``) judge one payload store; rows logged before the canary started (a bad earlier
try of the same version) are outside the window of both.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from mlstack.core import isvc, rollout
from mlstack.core.payload import write_feedback, write_predictions
from mlstack.core.settings import load_settings
from mlstack.demo import run as demo

MODEL = "fraud"


def _log(store: str, version: str, rows: int, accuracy: float, at: datetime, seed: int) -> None:
    """``rows`` answered requests of one version at ``at`` (the sink's columns) and their labels."""
    rng = np.random.default_rng(seed)
    probability = rng.beta(2, 5, rows)
    predicted = (probability >= 0.5).astype(int)
    ids = [uuid.uuid4().hex for _ in range(rows)]
    meta = {"inference_service": MODEL, "namespace": "demo", "component": "predictor", "model_name": MODEL}
    frame = pd.DataFrame({"request_id": ids, "row_index": 0, **meta, "model_version": version})
    frame["requested_at"] = frame["responded_at"] = at
    frame["prediction"], frame["probability"] = predicted, probability
    write_predictions(store, frame)
    truth = np.where(rng.random(rows) < accuracy, predicted, 1 - predicted)
    write_feedback(
        store, pd.DataFrame({"request_id": ids, "row_index": 0, "label": truth, "received_at": at})
    )


@pytest.mark.parametrize(("canary_accuracy", "verdict"), [(0.85, "promote"), (0.55, "rollback")])
def test_the_demo_and_the_cronjob_give_the_same_verdict(
    canary_accuracy, verdict, mlstack_home, monkeypatch, kubectl_model
):
    monkeypatch.setenv("MLSTACK_CANARY__MAX_ACCURACY_DROP", "0.05")
    monkeypatch.delenv("MLSTACK_CANARY__PROMETHEUS_URL", raising=False)
    settings = load_settings()
    stable = demo.base_isvc(MODEL, "1", "s3://mlflow/1/models/m-1/artifacts")
    canary = rollout.start(stable, {"champion": "1"}, "2", "s3://mlflow/1/models/m-2/artifacts", 20).result(
        stable
    )
    manifest = mlstack_home / "isvc-canary.yaml"
    manifest.write_text(yaml.safe_dump(canary))
    started = datetime.fromisoformat(isvc.annotations_of(canary)[isvc.ANN_STARTED_AT].replace("Z", "+00:00"))
    time.sleep(1)  # the stamp is truncated to the second: every row below is after it
    store = settings.payload_store
    _log(store, "2", 3000, 0.2, started - timedelta(hours=2), seed=1)  # before the canary: not judged
    now = datetime.now(UTC)
    _log(store, "1", 3000, 0.85, now, seed=2)
    _log(store, "2", 3000, canary_accuracy, now, seed=3)

    shown = demo.analyze_canary(settings, MODEL, "1", "2", started)
    code, out, err = kubectl_model("analyze", MODEL, "-f", str(manifest), "-o", "json")
    assert code == 0, err
    cronjob = json.loads(out)
    assert shown["verdict"] == cronjob["verdict"] == verdict
    assert shown["reasons"] == cronjob["reasons"]
    for role in ("primary", "canary"):
        assert (
            shown["variants"][role]["logged_predictions"] == cronjob["variants"][role]["logged_predictions"]
        )
        assert shown["variants"][role]["logged_predictions"] == 3000
