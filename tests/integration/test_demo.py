"""`mlstack demo --fast`: the whole loop for real, then the report opened in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.tools import require

MLSTACK = str(Path(sys.executable).parent / "mlstack")

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[dict, Path]:
    home = tmp_path_factory.mktemp("demo-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    env["MLSTACK_HOME"] = str(home)
    result = subprocess.run(
        [MLSTACK, "demo", "--fast", "--json"], env=env, capture_output=True, text=True, timeout=1700
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout), home / "demo"


def test_verdict_and_aliases_match_the_registry(demo):
    summary, home = demo
    verdict = summary["analysis"]["verdict"]
    # both versions come from the same generator: the analysis must not find the canary worse
    assert verdict == "promote", summary["analysis"]["reasons"]
    assert summary["aliases_before"] == {"champion": "1", "challenger": "2"}
    assert summary["aliases_after"] == {"champion": "2", "previous": "1"}
    # registry_uri too: other tests in this process may have set MLflow's global registry URI
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry = client.get_registered_model("loan-default").aliases
    assert {alias: str(version) for alias, version in registry.items()} == {"champion": "2", "previous": "1"}
    after = (home / "isvc-after-promote.yaml").read_text()
    assert "canaryTrafficPercent" not in after and "MLSTACK_MODEL_VERSION" in after


def test_traffic_split_drift_and_labels_are_real(demo):
    summary, _ = demo
    counts = {version: count for version, _, count in summary["traffic"]["by_version"]}
    assert sum(counts.values()) == summary["requests"] == 4000
    assert 0.07 < counts["2"] / summary["requests"] < 0.13  # the configured 90/10 split
    windows = summary["drift_windows"]
    assert [w["status"] for w in windows] == ["ok"] * 2
    # covariate shift is injected halfway: the first window is clean, the second drifted
    assert [w["drift_detected"] for w in windows] == [False, True]
    assert (
        windows[1]["features"]["credit_score"]["drifted"]
        and not windows[0]["features"]["credit_score"]["drifted"]
    )
    canary = summary["analysis"]["variants"]["canary"]
    assert canary["labeled"] >= 250 and canary["logged_predictions"] == counts["2"]


def test_report_shows_the_run_numbers(demo):
    summary, home = demo
    html = (home / "report.html").read_text()
    assert f"{summary['versions'][0]['metrics']['roc_auc']:.4f}" in html
    for version, _, count in summary["traffic"]["by_version"]:
        assert f"version {version}" in html and f">{count}<" in html
    assert f"{windows_share(summary):.3f}" in html
    assert "Canary verdict" in html and summary["analysis"]["verdict"] in html
    for link in [w["report"] for w in summary["drift_windows"] if w.get("report")]:
        assert (home / link).is_file() and link in html


def windows_share(summary: dict) -> float:
    return max(w["drifted_share"] for w in summary["drift_windows"])


def test_report_opens_in_chromium_without_console_errors(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    _, home = demo
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=require("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on(
            "console",
            lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.goto((home / "report.html").as_uri())
        assert page.locator("svg").count() >= 3  # traffic, drift share, feature drift charts
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_prometheus_checks_run_in_the_demo(demo):
    """The demo's Prometheus scraped both predictors: the 5xx-rate and p95 checks ran (not skipped)."""
    summary, home = demo
    checks = {check["name"]: check for check in summary["analysis"]["checks"]}
    assert checks["error_rate"]["status"] == "pass", checks["error_rate"]
    assert checks["p95_latency"]["status"] == "pass", checks["p95_latency"]
    variants = summary["analysis"]["variants"]
    counts = {version: count for version, _, count in summary["traffic"]["by_version"]}
    # Prometheus's count is increase() over a window that began hours before the predictors: each
    # series is born at 0 and scraped once before the replay, so nothing is extrapolated before it
    # (the count is never below what was answered); past its last sample PromQL extrapolates by at
    # most 1.1 mean scrape intervals (1 s; 1.5 s allowed for a loaded machine), over a sampled
    # range at least as long as the replay step (it scrapes before and after it).
    replay = next(seconds for step, seconds in summary["timings"].items() if step.startswith("replay"))
    overshoot = 1.1 * 1.5 / max(replay - 0.5, 1.0)
    for role, version in (("primary", "1"), ("canary", "2")):
        metrics = variants[role]["metrics"]
        assert metrics["revision"] == f"predictor-v{version}"
        answered = counts[version]
        assert answered <= metrics["requests"] <= answered * (1 + overshoot) + 1, (metrics, counts, replay)
        assert metrics["errors"] == 0 and metrics["p95_ms"] > 0
    assert (home / "prometheus" / "prometheus.yml").exists()
