"""The alert rules pass promtool; the dashboard only queries metrics that the job, KServe or Knative export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from monitoring.metrics import JOB_METRICS, exported_metric_names
from monitoring.promql_names import metric_names, template_metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "rules.yaml"
RULE_TESTS = sorted((ROOT / "monitoring" / "prometheus" / "tests").glob("*.yaml"))
DASHBOARD = ROOT / "monitoring" / "grafana" / "mlstack.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed: run `make system-deps` (Debian package prometheus)")
    return found


def test_rules_pass_promtool_check(promtool):
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_unit_tests_pass(promtool):
    assert len(RULE_TESTS) >= 2
    done = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True, cwd=RULES.parent
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_catches_a_wrong_expectation(promtool, tmp_path):
    """The rule tests can fail: flip one expectation and promtool must say so."""
    source = (RULES.parent / "tests" / "drift_alerts.yaml").read_text()
    broken = source.replace(
        'version: "3"}\n            exp_annotations:\n              summary: "Input drift',
        'version: "9"}\n            exp_annotations:\n              summary: "Input drift',
        1,
    )
    assert broken != source
    (tmp_path / "tests").mkdir()
    shutil.copy(RULES, tmp_path / "rules.yaml")
    (tmp_path / "tests" / "broken.yaml").write_text(broken)
    done = subprocess.run(
        [promtool, "test", "rules", "tests/broken.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode != 0


def test_rules_read_only_exported_metrics():
    import yaml

    known = exported_metric_names()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    for name in (
        "MlstackDriftDetected",
        "MlstackPredictionDriftHigh",
        "MlstackDriftJobStale",
        "MlstackDriftInsufficientData",
        "MlstackServingErrorRateHigh",
        "MlstackServingLatencyP95High",
    ):
        assert name in alerts
    for name, rule in alerts.items():
        used = metric_names(rule["expr"])
        assert used, name
        assert used <= known, f"{name} reads unknown metrics {used - known}"


def _serving_metric_names() -> set[str]:
    """Series names the predictor itself exports (its collectors; counters gain ``_total``)."""
    from serving import metrics as serving_metrics

    names = set()
    for name in serving_metrics.__all__:
        for family in getattr(serving_metrics, name).describe():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_every_dashboard_query_names_an_exported_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    known = exported_metric_names() | _serving_metric_names()
    panels = [p for p in _panels(dashboard) if p.get("type") != "row"]
    assert len(panels) >= 8
    seen: set[str] = set()
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used, f"panel {panel['title']!r} query names no metric: {target['expr']}"
            assert used <= known, f"panel {panel['title']!r} queries unknown metrics {used - known}"
            seen |= used
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            used = template_metric_names(variable["query"]["query"])
            assert used and used <= known, variable["name"]
    # what the issue asks the dashboard to show
    for needed in (
        "mlstack_feature_drift_score",
        "mlstack_drifted_features_share",
        "mlstack_prediction_drift_score",
        "kn_serving_invocation_duration_seconds_count",
        "kn_serving_invocation_duration_seconds_bucket",
    ):
        assert needed in seen, needed


def test_known_names_come_from_the_job_definitions():
    known = exported_metric_names()
    assert {d.name for d in JOB_METRICS} <= known
    for required in (
        "mlstack_feature_drift_score",
        "mlstack_drifted_features_share",
        "mlstack_prediction_drift_score",
        "mlstack_drift_detected",
        "mlstack_drift_rows",
        "mlstack_drift_last_success_timestamp_seconds",
    ):
        assert required in known


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (le, kn_revision_name) (rate(foo_bucket{a="b", c=~"x.*"}[5m]))', {"foo_bucket"}),
        ('time() - mlstack_x{model=~"$model"}', {"mlstack_x"}),
        ("a / on(model) group_left b > bool 0.5", {"a", "b"}),
        ("histogram_quantile(0.95, sum without (pod) (rate(lat_bucket[1m])))", {"lat_bucket"}),
        ("absent(mlstack_y)", {"mlstack_y"}),
    ],
)
def test_metric_name_extraction(expr, expected):
    assert metric_names(expr) == expected


def test_an_unknown_metric_in_a_panel_is_caught():
    assert metric_names('rate(not_exported_total{job="x"}[5m])') - exported_metric_names() == {
        "not_exported_total"
    }
