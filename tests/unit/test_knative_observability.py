"""Knative exports per-request metrics only when config-observability says so; the PodMonitor scrapes that port.

Checked against the pinned upstream source (knative.dev/serving v0.48.1 = Knative v1.21.1 from the Go
module proxy): the config key and protocol exist in upstream's config-observability, the default is
"none" (no request metrics at all), and the port name the chart scrapes is the queue-proxy's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.cluster import PLATFORM, by_kind, kustomize_build
from tests.unit.test_manifests import offline_copy

SERVING_MODULE = "knative.dev/serving@v0.48.1"


@pytest.fixture(scope="module")
def serving_source() -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        pytest.fail(f"Go is not installed: {SERVING_MODULE} is read from the Go module proxy")
    done = subprocess.run(
        [go, "mod", "download", "-json", SERVING_MODULE], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["Dir"])


def test_request_metrics_are_exported_for_prometheus(tmp_path, serving_source):
    objects = kustomize_build(offline_copy(PLATFORM / "knative-serving", tmp_path))
    data = next(o["data"] for o in objects if o["metadata"]["name"] == "config-observability")
    assert data["request-metrics-protocol"] == "prometheus"
    assert "request-metrics-endpoint" not in data  # prometheus + no endpoint = :9091 (sharedmain/otel.go)
    upstream = yaml.safe_load((serving_source / "config/core/configmaps/observability.yaml").read_text())
    example = upstream["data"]["_example"]
    assert re.search(r"^request-metrics-protocol:", example, re.M)
    assert "It supports either 'none' (the default), 'prometheus'" in example
    otel = (serving_source / "pkg/queue/sharedmain/otel.go").read_text()
    assert "networking.UserQueueMetricsPort" in otel


def test_pod_monitor_scrapes_the_queue_proxy_metrics_port(chart_default, serving_source):
    helpers = (serving_source / "pkg/apis/serving/v1/revision_helpers.go").read_text()
    port_names = dict(
        re.findall(r'^\s*(UserQueueMetricsPortName|UserPortName)\s*=\s*"([^"]+)"', helpers, re.M)
    )
    (monitor,) = [m for m in by_kind(chart_default, "PodMonitor")]
    ports = {endpoint["port"] for endpoint in monitor["spec"]["podMetricsEndpoints"]}
    assert ports == {port_names["UserQueueMetricsPortName"], port_names["UserPortName"]}
