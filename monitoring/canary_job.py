"""The I/O shell around ``canary_analysis.analyze``: read the payload window and Prometheus, write the report.

Takes plain values (versions, revisions, start time) so it does not depend on how the caller reads an
InferenceService; ``kubectl model analyze`` passes what ``mlstack.core.rollout.state_of`` found.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from mlstack.core.payload import load_window
from mlstack.core.settings import Settings
from monitoring.canary_analysis import Analysis, Variant, analyze, split_by_version
from monitoring.canary_metrics import revision_metrics
from monitoring.canary_report import write_report

log = logging.getLogger(__name__)


def report_dir(settings: Settings) -> Path:
    return Path(settings.canary.report_dir or settings.resolved_home / "canary")


def analyze_service(
    settings: Settings,
    name: str,
    namespace: str,
    primary_version: str,
    canary_version: str,
    primary_revision: str | None,
    canary_revision: str | None,
    since: datetime,
    now: datetime | None = None,
) -> tuple[Analysis, Path, Path]:
    """Analyze one canary in flight and write its A/B report; returns the analysis and report paths."""
    now = now or datetime.now(UTC)
    config = settings.canary
    store = settings.payload_store  # sink.store, where the payload sink writes
    rows = load_window(store, name, since=since, until=now)
    primary_rows, canary_rows = split_by_version(rows, primary_version, canary_version)
    log.info(
        "payload window %s..%s: %d primary, %d canary rows", since, now, len(primary_rows), len(canary_rows)
    )
    primary_metrics = canary_metrics = None
    if config.prometheus_url and primary_revision and canary_revision:
        seconds = (now - since).total_seconds()
        primary_metrics = revision_metrics(config, namespace, primary_revision, seconds)
        canary_metrics = revision_metrics(config, namespace, canary_revision, seconds)
    analysis = analyze(
        Variant("primary", str(primary_version), primary_revision, primary_rows, primary_metrics),
        Variant("canary", str(canary_version), canary_revision, canary_rows, canary_metrics),
        config,
        context={
            "inference_service": name,
            "namespace": namespace,
            "window": {"since": since.isoformat(), "until": now.isoformat()},
            "payload_store": store,
        },
    )
    stem = f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    json_path, md_path = write_report(analysis, report_dir(settings), stem)
    return analysis, json_path, md_path
