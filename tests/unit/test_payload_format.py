from datetime import UTC, datetime, timedelta

import pandas as pd

from mlstack.core import payload


def _rows(request_id, version, when, n=2, **extra):
    return pd.DataFrame(
        {
            "request_id": [request_id] * n,
            "row_index": list(range(n)),
            "inference_service": "fraud",
            "namespace": "default",
            "component": "predictor",
            "model_name": "fraud",
            "model_version": version,
            "requested_at": [when] * n,
            "responded_at": [when] * n,
            "prediction": [0] * n,
            "probability": [0.1] * n,
            "age": [30 + i for i in range(n)],
            **extra,
        }
    )


def test_window_filters_by_time_and_version_and_joins_labels(tmp_path):
    store = str(tmp_path)
    now = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    payload.write_predictions(store, _rows("old", "1", now - timedelta(hours=3)))
    payload.write_predictions(store, _rows("a", "1", now))
    payload.write_predictions(store, _rows("b", "2", now, credit_score=[700, 710]))  # new column in v2
    payload.write_feedback(
        store, pd.DataFrame({"request_id": ["a"], "row_index": [1], "label": [1], "received_at": [now]})
    )
    window = payload.load_window(
        store, "fraud", since=now - timedelta(hours=1), until=now + timedelta(hours=1)
    )
    assert sorted(window["request_id"].unique()) == ["a", "b"]
    assert (
        window.set_index(["request_id", "row_index"]).loc[("a", 1), "label"] == "1"
    )  # labels are stored as text
    assert window["label"].notna().sum() == 1
    assert window.loc[window["request_id"] == "a", "credit_score"].isna().all()
    only_v2 = payload.load_window(store, "fraud", version="2")
    assert set(only_v2["model_version"]) == {"2"}


def test_duplicate_rows_are_read_once_and_missing_store_is_empty(tmp_path):
    now = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    payload.write_predictions(str(tmp_path), _rows("a", "1", now))
    payload.write_predictions(str(tmp_path), _rows("a", "1", now))
    assert len(payload.load_window(str(tmp_path), "fraud")) == 2
    assert payload.load_window(str(tmp_path / "nothing"), "fraud").empty
