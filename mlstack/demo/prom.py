"""The demo's Prometheus: Debian's server scraping both predictors, and the canary queries it answers.

There is no Knative on a laptop, so there is no queue-proxy and no ``kn_serving_*`` series. The
canary analysis reads what the predictors themselves export instead (``serving/metrics.py``): the
lean server's ``mlstack_inference_responses_total{model_name, model_version, protocol, code}`` for
requests and 5xx, and KServe's ``request_predict_seconds`` histogram (``kserve/metrics.py``, label
``model_name``) for latency. Each predictor is its own scrape job named after the variant, so the
job plays the part a Knative revision plays on a cluster: ``$revision`` in the queries is the job.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import yaml

from mlstack.core.errors import MlstackError
from mlstack.demo.procs import Service, Services, free_port

SCRAPE_INTERVAL = "1s"
REQUESTS_QUERY = 'sum(increase(mlstack_inference_responses_total{job="$revision"}[$window]))'
ERRORS_QUERY = 'sum(increase(mlstack_inference_responses_total{job="$revision",code=~"5.."}[$window]))'
P95_QUERY = (
    'histogram_quantile(0.95, sum by (le) (rate(request_predict_seconds_bucket{job="$revision"}[$window])))'
)
QUERIES = {
    "requests_query": REQUESTS_QUERY,
    "errors_query": ERRORS_QUERY,
    "p95_query": P95_QUERY,
    "p95_query_unit_ms": 1000.0,  # request_predict_seconds is in seconds
}


def revision_of(version: str) -> str:
    """The scrape job (the demo's revision) of one predictor."""
    return f"predictor-v{version}"


def config_for(targets: dict[str, str]) -> dict:
    """A Prometheus config scraping ``/metrics`` of each ``{job: host:port}`` every second."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if not found:
        raise MlstackError("prometheus is not installed: run `make system-deps` (Debian package prometheus)")
    return found


def launch(services: Services, home: Path, targets: dict[str, str]) -> Service:
    """Start Prometheus on a free loopback port scraping ``targets``; wait with ``services.wait_ready``."""
    folder = home / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(config_for(targets), sort_keys=False))
    port = free_port()
    return services.launch(
        "prometheus",
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
        ],
        port,
    )


def scraped_total(url: str, job: str) -> float:
    """Inference responses Prometheus has scraped from ``job`` so far (0 before the first scrape)."""
    query = f'sum(mlstack_inference_responses_total{{job="{job}"}})'
    body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    result = body.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else 0.0


def wait_for_targets(url: str, jobs: list[str], timeout: float = 20) -> None:
    """Wait until every job has been scraped once (``up == 1``), so counting starts at zero."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{url}/api/v1/query", params={"query": "up == 1"}, timeout=5).json()
        up = {series["metric"].get("job") for series in body.get("data", {}).get("result", [])}
        if set(jobs) <= up:
            return
        if time.monotonic() > deadline:
            raise MlstackError(f"Prometheus at {url} has not scraped {sorted(set(jobs) - up)} yet")
        time.sleep(0.25)


def wait_for_counts(url: str, expected: dict[str, int], timeout: float = 20) -> None:
    """Wait until Prometheus has scraped every answered request of each job (the last scrape lands)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {job: scraped_total(url, job) for job in expected}
        if all(seen[job] >= count for job, count in expected.items()):
            return
        if time.monotonic() > deadline:
            raise MlstackError(f"Prometheus at {url} scraped {seen}, expected {expected}")
        time.sleep(0.25)
