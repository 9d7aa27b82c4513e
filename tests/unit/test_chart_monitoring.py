"""The chart ships the monitoring area's alert rules and dashboard unchanged.

Helm reads only files inside the chart, so helm/mlstack/files/ holds symlinks to
monitoring/prometheus/rules.yaml and monitoring/grafana/mlstack.json (Helm's loader follows them),
so the chart cannot ship a copy that drifted from what the promtool and dashboard tests check.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.fixtures.cluster import CHART, ROOT, by_kind
from tests.tools import require

SHIPPED = {
    "rules": (CHART / "files" / "prometheus-rules.yaml", ROOT / "monitoring" / "prometheus" / "rules.yaml"),
    "dashboard": (CHART / "files" / "grafana-mlstack.json", ROOT / "monitoring" / "grafana" / "mlstack.json"),
}


@pytest.mark.parametrize("what", sorted(SHIPPED))
def test_chart_copy_is_the_monitoring_source(what):
    chart_file, source = SHIPPED[what]
    assert chart_file.is_symlink(), f"{chart_file} must be a symlink to {source}, not a copy"
    assert chart_file.resolve() == source.resolve()
    assert chart_file.read_bytes() == source.read_bytes()


def test_prometheus_rule_wraps_the_rule_groups(chart_default):
    (rule,) = by_kind(chart_default, "PrometheusRule")
    source = yaml.safe_load(SHIPPED["rules"][0].read_text())
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_passes_promtool(chart_default, tmp_path):
    promtool = require("promtool")
    (rule,) = by_kind(chart_default, "PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_configmap_carries_the_dashboard_for_the_sidecar(chart_default):
    (configmap,) = [
        c
        for c in by_kind(chart_default, "ConfigMap")
        if "grafana_dashboard" in c["metadata"].get("labels", {})
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["mlstack.json"])
    assert dashboard == json.loads(SHIPPED["dashboard"][0].read_text())
    assert dashboard["title"]
