"""Canary vs primary: a verdict (promote | rollback | continue) with reasons, from three sources.

(a) payload logs per model version: prediction-distribution shift (and the logged sample sizes);
(b) Prometheus per revision: request count, 5xx rate, p95 latency (``canary_metrics``);
(c) feedback labels joined to the payload log: accuracy difference with a confidence interval.

``analyze`` is pure: data in, ``Analysis`` out. Each check passes, fails (with the action its failure
calls for), waits for more data, or is skipped when its source is not configured. Any failing check
whose action is rollback ⇒ ``rollback``; otherwise anything failing or waiting ⇒ ``continue``;
otherwise ``promote``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

import pandas as pd

from mlstack.core.contract import Target
from mlstack.core.labels import binary_series
from mlstack.core.settings import CanaryConfig
from mlstack.monitoring.canary.metrics import RevisionMetrics
from mlstack.monitoring.canary.stats import (
    Comparison,
    compare_distributions,
    compare_proportions,
    labels_needed,
    wilson,
)

Verdict = Literal["promote", "rollback", "continue"]
CheckStatus = Literal["pass", "fail", "wait", "skip"]
CheckAction = Literal["rollback", "continue"]  # what a failing check calls for


@dataclass
class VariantEvidence:
    """One side of the comparison: its model version, revision, logged rows and serving metrics."""

    role: str  # primary | canary
    version: str
    revision: str | None
    rows: pd.DataFrame  # payload rows of this version: prediction, probability, label (NA if unknown)
    metrics: RevisionMetrics | None = None
    target: Target | None = None  # the contract's target: how labels map to 0/1

    def summary(self) -> dict:
        labeled = labeled_rows(self.rows, self.target)
        return {
            "role": self.role,
            "version": self.version,
            "revision": self.revision,
            "logged_predictions": int(len(self.rows)),
            "labeled": int(len(labeled)),
            "metrics": self.metrics.to_dict() if self.metrics else None,
        }


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    reason: str
    action: CheckAction = "rollback"


@dataclass
class Analysis:
    verdict: Verdict
    reasons: list[str]
    checks: list[Check]
    comparisons: list[Comparison]
    variants: dict[str, dict]
    config: dict
    context: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            **self.context,
            "variants": self.variants,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "checks": [asdict(c) for c in self.checks],
            "config": self.config,
        }


def labeled_rows(rows: pd.DataFrame, target: Target | None = None) -> pd.DataFrame:
    """Rows with a usable label, with ``label01`` (``mlstack.core.labels``) and ``correct`` added.

    ``target`` (the model's contract target) maps string classes such as ``"malignant"``.
    """
    if rows.empty or "label" not in rows.columns:
        return pd.DataFrame(columns=["prediction", "label01", "correct"])
    labels = binary_series(rows["label"], target)
    kept = rows[labels.notna().to_numpy()].copy()
    kept["label01"] = labels[labels.notna()].astype(int).to_numpy()
    predicted = pd.to_numeric(kept["prediction"], errors="coerce")
    kept = kept[predicted.notna().to_numpy()]
    kept["correct"] = (predicted.dropna().astype(int) == kept["label01"]).astype(int)
    return kept


def split_by_version(
    rows: pd.DataFrame, primary_version: str, canary_version: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Payload rows answered by each version."""
    versions = rows["model_version"].astype(str) if not rows.empty else pd.Series(dtype=str)
    return rows[versions == str(primary_version)], rows[versions == str(canary_version)]


def _error_check(
    primary: VariantEvidence, canary: VariantEvidence, config: CanaryConfig, out: list[Comparison]
) -> Check:
    if primary.metrics is None or canary.metrics is None:
        return Check(
            "error_rate", "skip", "no Prometheus configured (canary.prometheus_url): 5xx rate not checked"
        )
    pm, cm = primary.metrics, canary.metrics
    comparison = compare_proportions(
        "error_rate_5xx", pm.errors, pm.requests, cm.errors, cm.requests, config.confidence, "fixed"
    )
    out.append(comparison)
    if cm.requests == 0:
        return Check("error_rate", "wait", "Prometheus has no requests for the canary revision yet")
    rate = cm.errors / cm.requests
    primary_rate = pm.errors / pm.requests if pm.requests else 0.0
    low, high = wilson(cm.errors, cm.requests, config.confidence)
    if low > config.max_error_rate and rate > primary_rate:
        return Check(
            "error_rate",
            "fail",
            f"canary 5xx rate {rate:.2%} (CI low {low:.2%}) exceeds {config.max_error_rate:.2%}",
        )
    if cm.requests >= config.min_samples and (high <= config.max_error_rate or rate <= primary_rate):
        return Check("error_rate", "pass", f"canary 5xx rate {rate:.2%} over {cm.requests} requests")
    return Check(
        "error_rate", "wait", f"canary 5xx rate {rate:.2%} over {cm.requests} requests: not conclusive yet"
    )


def _latency_check(
    primary: VariantEvidence, canary: VariantEvidence, config: CanaryConfig, out: list[Comparison]
) -> Check:
    if primary.metrics is None or canary.metrics is None:
        return Check("p95_latency", "skip", "no Prometheus configured: latency not checked")
    p, c = primary.metrics.p95_ms, canary.metrics.p95_ms
    ratio = c / p if p and c is not None else None
    out.append(
        Comparison(
            "p95_latency_ms",
            primary.metrics.requests,
            canary.metrics.requests,
            p,
            c,
            c - p if p and c is not None else None,
            None,
            None,
            None,
            f"ratio={ratio:.2f}" if ratio else "ratio",
        )
    )
    if ratio is None:
        return Check("p95_latency", "wait", "no latency histogram for one of the revisions yet")
    if canary.metrics.requests < config.min_samples:
        return Check(
            "p95_latency", "wait", f"p95 ratio {ratio:.2f} on only {canary.metrics.requests} canary requests"
        )
    if ratio > config.max_p95_latency_ratio:
        return Check(
            "p95_latency",
            "fail",
            f"canary p95 {c:.1f} ms is {ratio:.2f}x the primary's {p:.1f} ms (max {config.max_p95_latency_ratio})",
        )
    return Check("p95_latency", "pass", f"canary p95 {c:.1f} ms vs {p:.1f} ms")


def _shift_check(
    primary: VariantEvidence, canary: VariantEvidence, config: CanaryConfig, out: list[Comparison]
) -> Check:
    comparison = compare_distributions(
        "probability_distribution", primary.rows.get("probability", []), canary.rows.get("probability", [])
    )
    out.append(comparison)
    positives = [
        int(pd.to_numeric(v.rows.get("prediction", pd.Series(dtype=float)), errors="coerce").fillna(0).sum())
        for v in (primary, canary)
    ]
    out.append(
        compare_proportions(
            "positive_rate",
            positives[0],
            len(primary.rows),
            positives[1],
            len(canary.rows),
            config.confidence,
            "fixed",
        )
    )
    if min(len(primary.rows), len(canary.rows)) < config.min_samples:
        return Check(
            "prediction_shift",
            "wait",
            f"{len(canary.rows)} canary / {len(primary.rows)} primary predictions logged; need {config.min_samples} each",
            config.prediction_shift_action,
        )
    if comparison.difference is None:
        return Check(
            "prediction_shift",
            "skip",
            "no probabilities logged for one of the variants: prediction shift not checked",
            config.prediction_shift_action,
        )
    if comparison.difference > config.max_prediction_shift:
        return Check(
            "prediction_shift",
            "fail",
            f"prediction distribution moved by {comparison.difference:.3f} (Wasserstein; max {config.max_prediction_shift}): needs a human look",
            config.prediction_shift_action,
        )
    return Check(
        "prediction_shift",
        "pass",
        f"prediction shift {comparison.difference:.3f}",
        config.prediction_shift_action,
    )


def _accuracy_check(
    primary: VariantEvidence, canary: VariantEvidence, config: CanaryConfig, out: list[Comparison]
) -> Check:
    lp, lc = labeled_rows(primary.rows, primary.target), labeled_rows(canary.rows, canary.target)
    comparison = compare_proportions(
        "accuracy",
        int(lp["correct"].sum()),
        len(lp),
        int(lc["correct"].sum()),
        len(lc),
        config.confidence,
        config.method,
        tau=config.max_accuracy_drop,
    )
    out.append(comparison)
    if min(len(lp), len(lc)) < config.min_labeled:
        return Check(
            "accuracy",
            "wait",
            f"{len(lc)} canary / {len(lp)} primary labeled rows; need {config.min_labeled} each",
        )
    d, low, high = comparison.difference, comparison.ci_low, comparison.ci_high
    # both variants have min_labeled >= 1 rows here, so compare_proportions filled every field
    assert d is not None and low is not None and high is not None and comparison.primary is not None
    text = f"accuracy {comparison.canary:.3f} vs {comparison.primary:.3f} (diff {d:+.3f}, CI [{low:+.3f}, {high:+.3f}])"
    if high < 0 and d <= -config.max_accuracy_drop:
        return Check("accuracy", "fail", f"canary is worse: {text}")
    if low >= -config.max_accuracy_drop:
        return Check("accuracy", "pass", text)
    need = labels_needed(
        comparison.primary, config.max_accuracy_drop + min(d, 0), config.confidence, config.max_accuracy_drop
    )
    return Check(
        "accuracy", "wait", f"{text}: not conclusive; roughly {need} labeled rows per variant needed"
    )


def analyze(
    primary: VariantEvidence, canary: VariantEvidence, config: CanaryConfig, context: dict | None = None
) -> Analysis:
    """Compare the variants and decide promote | rollback | continue."""
    comparisons: list[Comparison] = []
    checks = [
        _error_check(primary, canary, config, comparisons),
        _latency_check(primary, canary, config, comparisons),
        _shift_check(primary, canary, config, comparisons),
        _accuracy_check(primary, canary, config, comparisons),
    ]
    if len(canary.rows) < config.min_samples:
        checks.append(
            Check(
                "sample_size",
                "wait",
                f"{len(canary.rows)} canary predictions logged; need {config.min_samples}",
            )
        )
    else:
        checks.append(Check("sample_size", "pass", f"{len(canary.rows)} canary predictions logged"))
    failed = [c for c in checks if c.status == "fail"]
    verdict: Verdict
    if any(c.action == "rollback" for c in failed):
        verdict = "rollback"
        reasons = [c.reason for c in failed if c.action == "rollback"]
    elif failed or any(c.status == "wait" for c in checks):
        verdict = "continue"
        reasons = [c.reason for c in checks if c.status in ("fail", "wait")]
    else:
        verdict = "promote"
        reasons = [c.reason for c in checks if c.status == "pass"]
    reasons += [c.reason for c in checks if c.status == "skip"]
    return Analysis(
        verdict=verdict,
        reasons=reasons,
        checks=checks,
        comparisons=comparisons,
        variants={"primary": primary.summary(), "canary": canary.summary()},
        config=config.model_dump(
            include={
                "min_samples",
                "min_labeled",
                "max_accuracy_drop",
                "max_error_rate",
                "max_p95_latency_ratio",
                "max_prediction_shift",
                "confidence",
                "method",
            }
        ),
        context={
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            **(context or {}),
        },
    )
