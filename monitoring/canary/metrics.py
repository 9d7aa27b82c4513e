"""Per-revision serving metrics from Prometheus's HTTP API: request count, 5xx count, p95 latency.

The PromQL lives in ``CanaryConfig`` (``requests_query``, ``errors_query``, ``p95_query``) because the
metric names depend on the Knative version that exports them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from string import Template

import httpx

from mlstack.core.errors import MlstackError
from mlstack.core.settings import CanaryConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevisionMetrics:
    """What Prometheus saw for one revision over the analysis window."""

    revision: str
    requests: int
    errors: int
    p95_ms: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def window_for(seconds: float) -> str:
    """A PromQL range covering ``seconds`` (at least one minute, whole seconds)."""
    return f"{max(60, int(math.ceil(seconds)))}s"


def instant_query(prometheus_url: str, query: str, timeout: float) -> float | None:
    """Run one instant query; the value of its single sample (None when the result is empty or NaN)."""
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    try:
        response = httpx.get(url, params={"query": query}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise MlstackError(
            f"cannot reach Prometheus at {prometheus_url}: {exc}; check canary.prometheus_url"
        ) from exc
    try:
        body = response.json()
    except ValueError as exc:
        raise MlstackError(
            f"Prometheus at {prometheus_url} answered HTTP {response.status_code} without JSON"
        ) from exc
    if response.status_code != 200 or body.get("status") != "success":
        raise MlstackError(
            f"Prometheus rejected the query {query!r}: {body.get('error', response.status_code)}"
        )
    result = body["data"]["result"]
    if not result:
        return None
    if len(result) > 1:
        raise MlstackError(f"query {query!r} returned {len(result)} series; it must aggregate to one")
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def revision_metrics(
    config: CanaryConfig, namespace: str, revision: str, window_seconds: float
) -> RevisionMetrics:
    """Request count, 5xx count and p95 latency (ms) of one Knative revision."""
    if not config.prometheus_url:
        raise MlstackError("canary.prometheus_url is not set")
    prometheus_url = config.prometheus_url
    values = {"namespace": namespace, "revision": revision, "window": window_for(window_seconds)}

    def run(template: str) -> float | None:
        query = Template(template).substitute(values)
        log.debug("prometheus query: %s", query)
        return instant_query(prometheus_url, query, config.prometheus_timeout)

    requests = run(config.requests_query)
    errors = run(config.errors_query)
    p95 = run(config.p95_query)
    return RevisionMetrics(
        revision=revision,
        requests=int(round(requests or 0)),
        errors=int(round(errors or 0)),
        p95_ms=None if p95 is None or math.isinf(p95) else p95 * config.p95_query_unit_ms,
    )
