"""Compaction merges the small files of closed partitions and changes no row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlstack.core import compaction, payload, payload_read

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def _rows(request_id: str, when: datetime, version: str = "1", **extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [request_id, request_id],
            "row_index": [0, 1],
            "inference_service": "fraud",
            "namespace": "ml",
            "component": "predictor",
            "model_name": "fraud",
            "model_version": version,
            "requested_at": [when, when],
            "responded_at": [when, when],
            "prediction": [1, 0],
            "probability": [0.9, 0.2],
            **({"age": [40.0, 41.0]} | extra),
        }
    )


def _files(root: Path, folder: str) -> list[Path]:
    return sorted(p for p in (root / folder).rglob("*.parquet"))


def _store(tmp_path: Path) -> str:
    store = str(tmp_path / "store")
    for hour in range(4):  # hours 06..09 (closed at 10:30 with min_age 1 h: 06, 07, 08)
        when = NOW.replace(hour=6 + hour, minute=5)
        for part in range(5):
            payload.write_predictions(store, _rows(f"h{hour}-p{part}", when + timedelta(minutes=part)))
            labels = pd.DataFrame(
                {
                    "request_id": [f"h{hour}-p{part}"] * 2,
                    "row_index": [0, 0],
                    "label": [0, part % 2],
                    "received_at": when,
                }
            )
            payload.write_feedback(store, labels)
    # a feature whose type changed between files (an older sink wrote text): kept apart, not cast
    payload.write_predictions(store, _rows("typed-text", NOW.replace(hour=6, minute=50), age=["40", "x"]))
    return store


def test_compaction_leaves_one_file_per_closed_partition_and_every_read_unchanged(tmp_path):
    store = _store(tmp_path)
    since, until = NOW - timedelta(hours=5), NOW + timedelta(hours=1)
    before = payload.load_window(store, "fraud", since, until)
    raw_before = payload.read_partitioned(f"{store}/predictions", ["inference_service", "model_version"])
    result = compaction.compact(store, now=NOW, min_age=timedelta(hours=1))
    assert result.errors == []
    predictions = _files(tmp_path / "store", "predictions")
    by_hour = pd.Series([p.parent.name for p in predictions]).value_counts().to_dict()
    # closed hours: one file each (hour 06: two, its files had two schemas); hour 09 is still open
    assert by_hour == {"hour=06": 2, "hour=07": 1, "hour=08": 1, "hour=09": 5}
    assert result.partitions == 3 + 3  # predictions and feedback of hours 06-08
    after = payload.load_window(store, "fraud", since, until)
    pd.testing.assert_frame_equal(before, after)
    raw_after = payload.read_partitioned(f"{store}/predictions", ["inference_service", "model_version"])
    assert len(raw_after) == len(raw_before)  # no row lost, none added
    # the last label of each id still wins (the order of rows is kept)
    assert after.set_index(["request_id", "row_index"]).loc[("h0-p1", 0), "label"] == "1"
    # a second run has nothing left to do
    again = compaction.compact(store, now=NOW, min_age=timedelta(hours=1))
    assert again.partitions == 0 and again.finished == 0


def test_an_interrupted_compaction_is_finished_and_readers_see_each_row_once(tmp_path, monkeypatch):
    store = _store(tmp_path)
    before = payload.load_window(store, "fraud")
    calls = []
    real_delete = compaction._delete

    def killed_after_first_delete(fs, path):
        calls.append(path)
        if len(calls) > 1:
            raise OSError("killed")
        real_delete(fs, path)

    monkeypatch.setattr(compaction, "_delete", killed_after_first_delete)
    crashed = compaction.compact(store, now=NOW, min_age=timedelta(hours=1), folders=("predictions",))
    assert crashed.errors  # the first partition stopped half way: its output and 4 of 5 inputs exist
    monkeypatch.setattr(compaction, "_delete", real_delete)
    pd.testing.assert_frame_equal(payload.load_window(store, "fraud"), before)  # duplicates read once
    finished = compaction.compact(store, now=NOW, min_age=timedelta(hours=1), folders=("predictions",))
    assert finished.finished >= 4 and finished.errors == []
    raw = payload.read_partitioned(f"{store}/predictions", ["inference_service"])
    assert raw.groupby(["request_id", "row_index"]).size().max() == 1
    pd.testing.assert_frame_equal(payload.load_window(store, "fraud"), before)


def test_a_file_compacted_away_while_a_reader_lists_is_read_from_the_compacted_file(tmp_path, monkeypatch):
    store = _store(tmp_path)
    before = payload.load_window(store, "fraud", NOW.replace(hour=7), NOW.replace(hour=8))
    listed = list(payload_read.list_files(f"{store}/predictions"))
    compaction.compact(store, now=NOW, min_age=timedelta(hours=1), folders=("predictions",))
    calls = {"n": 0}

    def stale_listing(uri, keep=None):  # the first listing is the one from before the compaction
        calls["n"] += 1
        if calls["n"] == 1:
            yield from (item for item in listed if keep is None or keep(item[2]))
        else:
            yield from real_list(uri, keep)

    real_list = payload_read.list_files
    monkeypatch.setattr(payload_read, "list_files", stale_listing)
    report = payload.ReadReport()
    after = payload.load_window(store, "fraud", NOW.replace(hour=7), NOW.replace(hour=8), report=report)
    pd.testing.assert_frame_equal(before, after)
    assert report.unreadable == []


@pytest.mark.parametrize("min_age_hours", [3, 30])
def test_partitions_younger_than_min_age_are_left_alone(tmp_path, min_age_hours):
    store = _store(tmp_path)
    files = _files(tmp_path / "store", "predictions")
    result = compaction.compact(store, now=NOW, min_age=timedelta(hours=min_age_hours))
    compacted_hours = {
        p.parent.name for p in _files(tmp_path / "store", "predictions") if p.name.startswith("compacted-")
    }
    assert compacted_hours == ({"hour=06"} if min_age_hours == 3 else set())  # 06 ended 3.5 h ago
    assert result.open_partitions > 0 and len(files) >= len(_files(tmp_path / "store", "predictions"))
    for path in _files(tmp_path / "store", "predictions"):
        if path.name.startswith("compacted-"):
            assert b"mlstack.replaces" in pq.read_schema(path).metadata


def test_the_command_compacts_and_says_what_it_did(tmp_path):
    import json
    import subprocess
    import sys

    store = _store(tmp_path)
    env = {"MLSTACK_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "mlstack.cli.main", "payloads", "compact", "--store", store, "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["partitions"] == 8 and result["files_after"] == 8 and result["errors"] == []
    bad = subprocess.run([*argv[:-1], "--min-age-hours", "-1"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
