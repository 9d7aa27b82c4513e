"""The I/O shell around ``canary_analysis.analyze``: read the payload window and Prometheus, write the report.

Takes plain values (versions, revisions, start time) so it does not depend on how the caller reads an
InferenceService; ``kubectl model analyze`` passes what ``mlstack.core.rollout.state_of`` found.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from mlstack.adapters import mlflow as mlflow_adapter
from mlstack.core.contract import Target
from mlstack.core.payload import load_window
from mlstack.core.settings import Settings
from mlstack.monitoring.canary.analysis import Analysis, VariantEvidence, analyze, split_by_version
from mlstack.monitoring.canary.metrics import revision_metrics
from mlstack.monitoring.canary.report import write_report

log = logging.getLogger(__name__)


def report_dir(settings: Settings) -> Path:
    return Path(settings.canary.report_dir or settings.resolved_home / "canary")


def _target(registry: mlflow_adapter.Mlflow, model: str, version: str) -> Target | None:
    """The version's contract target (how its labels map to 0/1); None when the registry lacks it."""
    try:
        return registry.registered_contract(model, str(version)).target
    except Exception as exc:  # no registry, or a version registered without mlstack metadata
        log.warning(
            "no contract for %s version %s (%s): only 0/1 and true/false labels count", model, version, exc
        )
        return None


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
    registry = mlflow_adapter.from_settings(settings)
    primary_target, canary_target = (
        _target(registry, name, primary_version),
        _target(registry, name, canary_version),
    )
    analysis = analyze(
        VariantEvidence(
            "primary", str(primary_version), primary_revision, primary_rows, primary_metrics, primary_target
        ),
        VariantEvidence(
            "canary", str(canary_version), canary_revision, canary_rows, canary_metrics, canary_target
        ),
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
