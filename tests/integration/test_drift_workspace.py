"""Drift snapshots accumulate in one Evidently project per model, and a real `evidently ui` serves that history."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from mlstack.core.generator import generate, loan_contract
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift import workspace
from mlstack.monitoring.drift.job import evaluate
from tests.conftest import free_port, stop, wait_for_http


def test_history_is_visible_in_the_evidently_ui(tmp_path):
    contract = loan_contract()
    reference = generate(3000, seed=1)
    root = tmp_path / "ws"
    start = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    for run, scenario in enumerate(["none", "category_shift"]):
        outcome = evaluate(
            "loan",
            "3",
            reference,
            generate(2000, seed=10 + run, scenario=scenario),
            contract,
            DriftConfig(),
            timestamp=start + timedelta(minutes=15 * run),
        )
        ids = workspace.add_snapshot(str(root), "loan", outcome.snapshot)
        html = workspace.save_html(str(root), "loan", "3", f"run{run}", outcome.snapshot)
        assert Path(html).stat().st_size > 10_000
    outcome = evaluate("churn", "1", reference, generate(2000, seed=30), contract, DriftConfig())
    workspace.add_snapshot(str(root), "churn", outcome.snapshot)

    port = free_port()
    ui = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "evidently"),
            "ui",
            "--workspace",
            str(root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/api/projects", timeout=180, process=ui)
        projects = {p["name"]: p["id"] for p in httpx.get(f"{base}/api/projects", timeout=30).json()}
        assert set(projects) == {"loan", "churn"}
        assert projects["loan"] == ids["project"]
        snapshots = httpx.get(f"{base}/api/projects/{projects['loan']}/snapshots", timeout=30).json()
        assert len(snapshots) == 2
        assert {s["metadata"]["version"] for s in snapshots} == {"3"}
        assert sorted(s["timestamp"][:16] for s in snapshots) == ["2026-11-27T08:00", "2026-11-27T08:15"]
    finally:
        stop(ui, timeout=20)


def test_adding_a_run_does_not_read_the_history(tmp_path):
    """Each run adds one file; it never parses the snapshots already there (they grow every 15 minutes).

    Evidently's own local workspace parses every stored snapshot when opened; a history file that
    cannot be parsed shows whether the job still does that.
    """
    contract = loan_contract()
    reference = generate(3000, seed=1)
    root = tmp_path / "ws"
    first = evaluate("loan", "3", reference, generate(2000, seed=10), contract, DriftConfig())
    ids = workspace.add_snapshot(str(root), "loan", first.snapshot)
    history = root / ids["project"] / "snapshots"
    (history / "01900000-0000-7000-8000-000000000000.json").write_text("{not json: a snapshot from long ago")
    second = evaluate("loan", "3", reference, generate(2000, seed=11), contract, DriftConfig())
    added = workspace.add_snapshot(str(root), "loan", second.snapshot)
    assert added["project"] == ids["project"]
    assert (history / f"{added['snapshot']}.json").is_file()
    assert len(list(history.glob("*.json"))) == 3
