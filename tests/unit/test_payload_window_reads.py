"""The store readers (``mlstack.core.payload``): a window opens only its hours' files, the last
label wins, and rows without a request id are all kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlstack.core import payload

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def _rows(request_id: str, when: datetime, n: int = 1, version: str = "1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [request_id] * n,
            "row_index": list(range(n)),
            "inference_service": "fraud",
            "namespace": "ml",
            "component": "predictor",
            "model_name": "fraud",
            "model_version": version,
            "requested_at": [when] * n,
            "responded_at": [when] * n,
            "prediction": [1] * n,
            "probability": [0.9] * n,
            "age": [40.0] * n,
        }
    )


def _label(request_id: str, label, when: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {"request_id": [request_id], "row_index": [0], "label": [label], "received_at": [when]}
    )


def test_a_window_opens_only_the_files_of_its_hours(tmp_path):
    """3 days of hourly partitions, 2 files an hour, a label file an hour: a 1 h window opens
    its 2 prediction files and the label files from 1 h before it on (not all 144 + 72)."""
    store = str(tmp_path)
    start = NOW.replace(minute=0) - timedelta(days=3)
    for hour in range(72):
        when = start + timedelta(hours=hour, minutes=10)
        for part in range(2):
            payload.write_predictions(store, _rows(f"r{hour}-{part}", when))
        payload.write_feedback(store, _label(f"r{hour}-0", 1, when + timedelta(minutes=5)))
    since = start + timedelta(hours=70)  # the window: hour 70 of 72
    report = payload.ReadReport()
    window = payload.load_window(store, "fraud", since, since + timedelta(hours=1), report=report)
    assert sorted(window["request_id"]) == ["r70-0", "r70-1"]
    labels = window.set_index("request_id")["label"]
    assert labels["r70-0"] == "1" and pd.isna(labels["r70-1"])
    # predictions of hour 70; feedback of hours 69, 70, 71 (received from 1 h before the window on)
    assert report.files == 2 + 3, report.to_dict()
    # a partition folder that does not name a time is read, not silently skipped
    odd = tmp_path / "predictions" / "inference_service=fraud" / "model_version=1" / "date=unknown"
    odd.mkdir()
    _rows("odd", since + timedelta(minutes=1)).drop(
        columns=["inference_service", "model_version"]
    ).to_parquet(odd / "part-x.parquet")
    again = payload.load_window(store, "fraud", since, since + timedelta(hours=1))
    assert sorted(again["request_id"]) == ["odd", "r70-0", "r70-1"]


def test_feedback_in_the_old_date_only_layout_is_still_read(tmp_path):
    store = str(tmp_path)
    payload.write_predictions(store, _rows("a", NOW))
    legacy = tmp_path / "feedback" / f"date={NOW:%Y-%m-%d}"
    legacy.mkdir(parents=True)
    frame = _label("a", "true", NOW + timedelta(minutes=1))
    frame["label"] = frame["label"].astype("string")
    frame.to_parquet(legacy / "part-legacy.parquet")
    window = payload.load_window(store, "fraud", NOW - timedelta(minutes=30), NOW + timedelta(minutes=30))
    assert window.set_index("request_id").loc["a", "label"] == "true"


def test_conflicting_labels_in_one_batch_the_last_wins_for_every_id(tmp_path):
    """100 ids, each labelled 0 then 1 in one /feedback batch (one received_at): 1 must win for all
    100 (an unstable sort on equal received_at kept the last for 6 of 100)."""
    store = str(tmp_path)
    ids = [f"id-{i:03d}" for i in range(100)]
    for request_id in ids:
        payload.write_predictions(store, _rows(request_id, NOW))
    batch = pd.DataFrame(
        {
            "request_id": [i for i in ids for _ in (0, 1)],
            "row_index": 0,
            "label": [label for _ in ids for label in (0, 1)],
            "received_at": NOW,
        }
    )
    payload.write_feedback(store, batch)
    window = payload.load_window(store, "fraud")
    assert (window["label"] == "1").sum() == 100, window["label"].value_counts().to_dict()


def test_a_file_without_request_id_keeps_every_row(tmp_path):
    """3,000 rows without request_id (row_index 0..49 repeated) are all read, not collapsed to 50."""
    folder = (
        tmp_path
        / "predictions"
        / "inference_service=fraud"
        / "model_version=1"
        / "date=2026-11-27"
        / "hour=10"
    )
    folder.mkdir(parents=True)
    rows = _rows("x", NOW, n=3000).drop(columns=["request_id", "inference_service", "model_version"])
    rows["row_index"] = [i % 50 for i in range(3000)]
    rows["age"] = [float(i) for i in range(3000)]
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part-external.parquet")
    payload.write_predictions(str(tmp_path), _rows("a", NOW, n=2))
    payload.write_predictions(str(tmp_path), _rows("a", NOW, n=2))  # a repeated flush: read once
    report = payload.ReadReport()
    window = payload.load_window(str(tmp_path), "fraud", report=report)
    assert len(window) == 3000 + 2
    external = window[window["request_id"].isna()]
    assert sorted(external["age"]) == [float(i) for i in range(3000)]  # every external row
    assert window["request_id"].eq("a").sum() == 2  # "a"'s two rows, once each
    assert report.rows_without_id == 3000
