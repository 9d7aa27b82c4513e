"""The alert rules pass promtool; the rules and the dashboard read only mlstack series our code really exports.

"Really exports" is measured, not listed: the drift job's names come from rendering a full result with
``mlstack.monitoring.metrics.registry_for`` (what it pushes), the predictor's from its collectors. Upstream
series (Knative, KServe) are checked by evaluating every shipped expression against a real Prometheus
in tests/integration/test_promql_shipped.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.promql import _panels
from tests.fixtures.promql_names import metric_names, template_metric_names

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


def _pushed_names() -> set[str]:
    """Series names the drift job pushes for a result with every field set (rendered, not listed)."""
    from mlstack.monitoring.drift.metrics import registry_for

    full = {
        "model": "m",
        "version": "1",
        "rows": 10,
        "status": "ok",
        "drifted_share": 0.5,
        "drift_detected": True,
        "features": {
            "f": {
                "score": 0.1,
                "method": "psi",
                "drifted": False,
                "missing_share": {"current": 0.0},
                "out_of_contract_share": 0.0,
            }
        },
        "prediction_drift": {
            "column": "prediction",
            "score": 0.1,
            "method": "jensenshannon",
            "drifted": False,
        },
        "performance": {
            "labeled_rows": 5,
            "degraded": False,
            "online": {"accuracy": 0.8, "roc_auc": 0.8},
            "offline": {"accuracy": 0.8, "roc_auc": 0.8},
        },
    }
    return {sample.name for family in registry_for(full, 0.0).collect() for sample in family.samples}


def _serving_metric_names() -> set[str]:
    """Series names the predictor's registered collectors expose (a labelled family has no samples
    until used, so the names come from each family's type)."""
    from prometheus_client import REGISTRY

    import mlstack.serving.app  # noqa: F401  (registers every predictor collector, KServe's histograms too)

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix for family in REGISTRY.collect() for suffix in suffixes.get(family.type, ("",))
    }


def _rollout_metric_names() -> set[str]:
    """Series names the rollout controller exposes (its own registry; labelled families typed as above)."""
    from mlstack.serving.rollout_controller.metrics import Metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def _ours(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("mlstack_")}


def test_rules_read_only_exported_mlstack_metrics():
    import yaml

    known = _pushed_names() | _rollout_metric_names()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    for name in (
        "MlstackDriftDetected",
        "MlstackPredictionDriftHigh",
        "MlstackDriftJobStale",
        "MlstackDriftInsufficientData",
        "MlstackServingErrorRateHigh",
        "MlstackServingLatencyP95High",
        "MlstackRolloutNoLeader",
        "MlstackRolloutReconcileFailing",
    ):
        assert name in alerts
    for name, rule in alerts.items():
        used = metric_names(rule["expr"])
        assert used, name
        assert _ours(used) <= known, f"{name} reads series nothing pushes: {_ours(used) - known}"


def test_every_dashboard_query_names_an_exported_mlstack_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    known = _pushed_names() | _serving_metric_names()
    panels = [p for p in _panels(dashboard) if p.get("type") != "row"]
    assert len(panels) >= 8
    seen: set[str] = set()
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used, f"panel {panel['title']!r} query names no metric: {target['expr']}"
            assert _ours(used) <= known, f"panel {panel['title']!r} queries unexported {_ours(used) - known}"
            seen |= used
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            used = template_metric_names(variable["query"]["query"])
            assert used and _ours(used) <= known, variable["name"]
    # what the issue asks the dashboard to show
    for needed in (
        "mlstack_feature_drift_score",
        "mlstack_drifted_features_share",
        "mlstack_prediction_drift_score",
        "kn_serving_invocation_duration_seconds_count",
        "kn_serving_invocation_duration_seconds_bucket",
        "target_info",
    ):
        assert needed in seen, needed


def test_pushed_names_are_rendered_not_listed():
    """The known set comes from a render: a metric the job stopped pushing drops out of it."""
    known = _pushed_names()
    for required in (
        "mlstack_feature_drift_score",
        "mlstack_drifted_features_share",
        "mlstack_prediction_drift_score",
        "mlstack_drift_detected",
        "mlstack_drift_rows",
        "mlstack_drift_last_success_timestamp_seconds",
    ):
        assert required in known
    assert not any(name.startswith(("kn_", "request_", "target_info")) for name in known)


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
    assert _ours(metric_names('rate(mlstack_not_exported_total{job="x"}[5m])')) - _pushed_names() == {
        "mlstack_not_exported_total"
    }
