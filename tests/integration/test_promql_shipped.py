"""Every PromQL expression we ship returns data from a real Prometheus scraping series shaped as upstream exports them.

What Prometheus scrapes here, and what each part stands for:
- two Knative queue-proxy metrics stand-ins (tests/fixtures/knative_queue_metrics, Go, built from
  knative.dev/serving v0.48.1 = Knative v1.21.1): the request metrics and their exporter are the
  pinned upstream code, so ``kn_serving_invocation_duration_seconds`` carries only
  ``http_response_status_code`` and the revision's identity is on ``target_info`` only;
- behind revision 00001 our real lean predictor (KServe's ``request_predict_seconds`` objects, our
  ``mlstack_*`` counters); behind revision 00002 the stock ``kserve.ModelServer`` (kserve 0.21.0)
  with a model that fails every 5th request and is slow on another 5th (a bad canary);
- a real Pushgateway holding what ``mlstack.monitoring.metrics.push`` pushes for two model versions.
All four /metrics endpoints sit in one scrape job, as the chart's PodMonitor puts a pod's
user-port and http-usermetric endpoints in one job.

The expressions come from the shipped files (tests/fixtures/promql.py), so a new one cannot escape.
An alert expression must return data in one of two phases: before any drift job reported
(``absent(...)``), or after the traffic and the pushes (every other alert fires then).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml

from mlstack.core import generator
from mlstack.core.settings import CanaryConfig, DriftConfig
from mlstack.demo import prom
from mlstack.monitoring.canary.metrics import revision_metrics, window_for
from mlstack.monitoring.drift import metrics as drift_metrics
from tests.conftest import ROOT, free_port, wait_for_http
from tests.fixtures.knative_metrics import start_queue_proxy
from tests.fixtures.monitoring import start_pushgateway
from tests.fixtures.promql import canary_query, dashboard_query, shipped_expressions
from tests.fixtures.serving import MODEL_VERSION, start_predictor

NAMESPACE, SERVICE, MODEL = "mlstack", "loan-default-predictor", "loan-default"
PRIMARY, CANARY = f"{SERVICE}-00001", f"{SERVICE}-00002"
PREDICTOR_JOB = f"{NAMESPACE}/mlstack-predictor"  # the PodMonitor's job: <namespace>/<name>
DEMO_JOB = prom.revision_of(MODEL_VERSION)
DASHBOARD_VARIABLES = {"model": MODEL, "version": "1", "namespace": NAMESPACE}
PRIMARY_REQUESTS, BAD_REQUESTS, CANARY_REQUESTS = 100, 5, 100

pytestmark = pytest.mark.timeout(1800)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def query(url: str, expr: str) -> list[dict]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return body["data"]["result"]


def wait_until(url: str, expr: str, minimum: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(url, expr)
        if result and float(result[0]["value"][1]) >= minimum:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{expr} never reached {minimum}: {query(url, expr)}")


def drift_result(version: str, status: str) -> dict:
    """A drift job result of the shape ``drift_job.run`` returns (``metrics.registry_for`` renders it)."""
    base = {"model": MODEL, "version": version, "rows": 1200 if status == "ok" else 40, "status": status}
    if status != "ok":
        return base
    return base | {
        "drifted_share": 0.5,
        "drift_detected": True,
        "features": {
            "credit_score": {
                "score": 0.31,
                "method": "wasserstein",
                "drifted": True,
                "missing_share": {"current": 0.02},
                "out_of_contract_share": 0.0,
            }
        },
        "prediction_drift": {"column": "probability", "score": 0.2, "method": "wasserstein", "drifted": True},
        "performance": {
            "labeled_rows": 900,
            "degraded": True,
            "online": {"accuracy": 0.71, "roc_auc": 0.74},
            "offline": {"accuracy": 0.83, "roc_auc": 0.88},
        },
    }


def v1_body(rows) -> dict:
    """A v1 request of ``rows`` as objects (missing values as null, numbers as JSON numbers)."""
    features = generator.loan_contract().feature_names
    return {"instances": json.loads(rows[features].to_json(orient="records"))}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_dir, knative_queue_metrics_bin):
    tmp = tmp_path_factory.mktemp("promql")
    stoppers = []
    try:
        predictor = start_predictor(model_dir, "lean", tmp, name=MODEL, timeout=600)
        stoppers.append(predictor.stop)
        flaky_port = free_port()
        flaky = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fixtures.flaky_kserve_model",
                "--name",
                MODEL,
                "--port",
                str(flaky_port),
            ],
            cwd=ROOT,
            stdout=open(tmp / "flaky.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        stoppers.append(lambda: _stop(flaky))
        flaky_url = f"http://127.0.0.1:{flaky_port}"
        wait_for_http(f"{flaky_url}/v2/health/ready", timeout=600, process=flaky)
        primary = start_queue_proxy(
            knative_queue_metrics_bin, predictor.url, NAMESPACE, SERVICE, PRIMARY, tmp / "qp1.log"
        )
        stoppers.append(primary.stop)
        canary = start_queue_proxy(
            knative_queue_metrics_bin, flaky_url, NAMESPACE, SERVICE, CANARY, tmp / "qp2.log"
        )
        stoppers.append(canary.stop)

        gateway, gateway_url = start_pushgateway(tmp)
        stoppers.append(lambda: _stop(gateway))

        # the rollout controller's own metrics, with no replica leading and reconciles failing
        rollout_port = free_port()
        rollout = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.rollout_metrics", "--port", str(rollout_port)],
            cwd=ROOT,
            stdout=open(tmp / "rollout.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        stoppers.append(lambda: _stop(rollout))
        wait_for_http(f"http://127.0.0.1:{rollout_port}/metrics", timeout=120, process=rollout)

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": PREDICTOR_JOB,
                    "static_configs": [
                        {
                            "targets": [
                                primary.metrics_target,
                                canary.metrics_target,
                                predictor.url.removeprefix("http://"),
                                flaky_url.removeprefix("http://"),
                            ]
                        }
                    ],
                },
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [gateway_url.removeprefix("http://")]}],
                },
                {
                    # the labels the chart's ServiceMonitor scrape adds (prometheus-operator v0.90.1,
                    # pkg/prometheus/promcfg.go: job = service = the Service's name, namespace, pod,
                    # container, endpoint = the port's name; instance from the target)
                    "job_name": "mlstack-rollout-controller",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{rollout_port}"],
                            "labels": {
                                "namespace": NAMESPACE,
                                "service": "mlstack-rollout-controller",
                                "pod": "mlstack-rollout-controller-5d8c7-a",
                                "container": "controller",
                                "endpoint": "http",
                            },
                        }
                    ],
                },
                {
                    "job_name": DEMO_JOB,
                    "static_configs": [{"targets": [predictor.url.removeprefix("http://")]}],
                },
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus_port = free_port()
        server = subprocess.Popen(
            [
                prom.prometheus_binary(),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=open(tmp / "prometheus.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        stoppers.append(lambda: _stop(server))
        url = f"http://127.0.0.1:{prometheus_port}"
        wait_for_http(f"{url}/-/ready", timeout=120, process=server)
        wait_until(url, "count(up == 1)", 7)

        # phase a: nothing reported by any drift job yet
        before = {
            item.name: query(url, item.expr) for item in shipped_expressions() if item.source == "rules"
        }

        rows = generator.generate(PRIMARY_REQUESTS, seed=5)
        # warm-up: one primary request, then wait until Prometheus holds its request series.
        # increase()/rate() cannot count what a series already held at its first sample, and a series
        # appears on its first request: on an idle machine the 105 primary requests take under a
        # second, and without this the primary counted 0 of 100 (and the demo p95 was empty)
        kn_series = "count(count by (instance) (kn_serving_invocation_duration_seconds_count))"
        warm = httpx.post(
            f"{primary.url}/v1/models/{MODEL}:predict", json=v1_body(rows.iloc[[0]]), timeout=30
        )
        assert warm.status_code == 200, warm.text
        wait_until(url, kn_series, 1)
        wait_until(url, f'count(request_predict_seconds_bucket{{job="{DEMO_JOB}"}})', 1)
        time.sleep(1.5)  # one more scrape: the series has a sample before the measured traffic
        with httpx.Client(timeout=30) as client:
            for k in range(PRIMARY_REQUESTS):
                answer = client.post(f"{primary.url}/v1/models/{MODEL}:predict", json=v1_body(rows.iloc[[k]]))
                assert answer.status_code == 200, answer.text
            for _ in range(BAD_REQUESTS):
                answer = client.post(f"{primary.url}/v1/models/{MODEL}:predict", json={"instances": [{}]})
                assert answer.status_code == 400, answer.text

        # no warm-up for the canary: its traffic spans several scrapes (a fifth of the calls take 0.6 s)

        def to_canary(k: int) -> int:
            return httpx.post(
                f"{canary.url}/v1/models/{MODEL}:predict", json={"instances": [[k]]}, timeout=30
            ).status_code

        with ThreadPoolExecutor(10) as pool:
            codes = list(pool.map(to_canary, range(CANARY_REQUESTS)))
        # the model fails every 5th predict call it sees (KServe may call it for more than our requests)
        assert set(codes) <= {200, 500} and 0.1 < codes.count(500) / len(codes) < 0.3, codes
        failed_share = codes.count(500) / len(codes)

        now = time.time()
        job = DriftConfig().push_job  # the drift job's default Pushgateway job
        drift_metrics.push(gateway_url, job, drift_result("1", "ok"), finished_at=now)
        drift_metrics.push(gateway_url, job, drift_result("2", "insufficient_data"), now - 3600)

        wait_until(url, "sum(kn_serving_invocation_duration_seconds_count)", 205)
        wait_until(url, "count(mlstack_drift_rows)", 2)
        time.sleep(3)  # a few more scrapes, so every rate() has samples after the traffic
        yield {"url": url, "before": before, "tmp": tmp, "failed_share": failed_share}
    finally:
        for stop in reversed(stoppers):
            stop()


EXPRESSIONS = shipped_expressions()


def test_every_shipped_source_is_enumerated():
    """The enumeration reads each shipped file: a source that vanished would shrink the list silently."""
    sources = {item.source for item in EXPRESSIONS}
    assert {"rules", "dashboard", "dashboard-variable", "canary", "demo-canary"} <= sources
    assert sum(item.source == "rules" for item in EXPRESSIONS) == 11
    assert sum(item.source == "dashboard" for item in EXPRESSIONS) >= 18


@pytest.mark.parametrize("item", [e for e in EXPRESSIONS if e.source == "rules"], ids=lambda e: e.name)
def test_alert_expression_returns_data(stack, item):
    after = query(stack["url"], item.expr)
    assert stack["before"][item.name] or after, f"{item.name} never returns data: {item.expr}"


@pytest.mark.parametrize(
    "item", [e for e in EXPRESSIONS if e.source.startswith("dashboard")], ids=lambda e: f"{e.source}:{e.name}"
)
def test_dashboard_expression_returns_data(stack, item):
    expr = dashboard_query(item.expr, DASHBOARD_VARIABLES)
    assert "$" not in expr, expr
    result = query(stack["url"], expr)
    assert result, f"panel {item.name!r} shows nothing: {expr}"
    if "kn_revision_name" in item.expr and "by (" in item.expr and "kn_revision_name)" in item.expr:
        # per-revision panels: one line per revision, both revisions present
        assert {series["metric"].get("kn_revision_name") for series in result} >= {PRIMARY, CANARY}, result


@pytest.mark.parametrize(
    "item", [e for e in EXPRESSIONS if e.source.endswith("canary")], ids=lambda e: f"{e.source}:{e.name}"
)
def test_canary_query_returns_one_series_per_revision(stack, item):
    """One series per revision. Knative's queue-proxy makes a series per status code it has seen, so a
    revision that never failed has no 5xx series: its errors query may be empty (read as 0), but only
    while its requests query finds it, so a query that matches nothing cannot pass as "no errors"."""
    if item.source == "demo-canary":
        revisions, namespace, failing = [DEMO_JOB], "demo", set()
    else:
        revisions, namespace, failing = [PRIMARY, CANARY], NAMESPACE, {CANARY}
    requests_template = next(
        e.expr for e in EXPRESSIONS if e.source == item.source and e.name == "requests_query"
    )
    for revision in revisions:
        expr = canary_query(item.expr, namespace, revision, window_for(300))
        result = query(stack["url"], expr)
        if item.name == "errors_query" and revision not in failing and not result:
            assert query(stack["url"], canary_query(requests_template, namespace, revision, "300s"))
            continue
        assert len(result) == 1, f"{item.name} for {revision}: {result} ({expr})"


def test_canary_analysis_reads_both_revisions(stack):
    """The analysis's own Prometheus path with the shipped defaults: what the CronJob would see."""
    config = CanaryConfig(prometheus_url=stack["url"])
    primary = revision_metrics(config, NAMESPACE, PRIMARY, 300)
    canary = revision_metrics(config, NAMESPACE, CANARY, 300)
    # increase() misses what a series held at its first scrape (the queue-proxy creates a series on
    # its first request) and extrapolates within the window: the counts are near the requests sent.
    # The clean-clone run counted 59 of 100 primary requests (the first scrape came late): the same
    # floor as the canary's, half of what was sent
    assert 0.5 * PRIMARY_REQUESTS <= primary.requests <= 1.5 * (PRIMARY_REQUESTS + BAD_REQUESTS)
    assert primary.errors == 0
    assert 0.5 * CANARY_REQUESTS <= canary.requests <= 1.5 * CANARY_REQUESTS
    assert abs(canary.errors / canary.requests - stack["failed_share"]) < 0.05
    # a fifth of the canary's requests spend 0.6 s in predict: its p95 is above 0.5 s, above the primary's
    assert canary.p95_ms > 500 and primary.p95_ms < canary.p95_ms


def test_demo_queries_read_the_predictor(stack):
    config = CanaryConfig(prometheus_url=stack["url"], **prom.QUERIES)
    measured = revision_metrics(config, "demo", DEMO_JOB, 300)
    assert PRIMARY_REQUESTS <= measured.requests <= 1.5 * (PRIMARY_REQUESTS + BAD_REQUESTS)
    assert measured.errors == 0
    assert measured.p95_ms is not None and measured.p95_ms > 0


EXPORTED_PREFIXES = ("kn_", "target_info", "request_", "mlstack_")
_SERIES = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')


def test_promtool_test_series_have_the_scraped_shape(stack):
    """The series the promtool rule tests feed in carry exactly the label names a real scrape yields."""
    checked = 0
    for path in sorted((ROOT / "monitoring" / "prometheus" / "tests").glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for entry in test.get("input_series", []):
                name, labels = _SERIES.match(entry["series"]).groups()
                if not name.startswith(EXPORTED_PREFIXES):
                    continue  # Prometheus's own series (up), not an exporter's
                given = frozenset(_LABEL.findall(labels or ""))
                response = httpx.get(
                    f"{stack['url']}/api/v1/series", params={"match[]": name}, timeout=10
                ).json()["data"]
                if name == "target_info":
                    scraped = {frozenset(s) - {"__name__"} for s in response if "kn_revision_name" in s}
                else:
                    scraped = {frozenset(s) - {"__name__"} for s in response}
                assert scraped, f"{path.name}: nothing real exports {name}"
                assert given in scraped, (
                    f"{path.name}: {entry['series']} has labels {sorted(given)}; scraped: {[sorted(s) for s in scraped]}"
                )
                checked += 1
    assert checked >= 20
