"""Statistics for canary analysis: proportions, their differences, always-valid intervals, distribution shift.

Two ways to put an interval on ``canary - primary`` for a proportion (accuracy, error rate):

- ``fixed``: Newcombe's hybrid score interval (method 10 of Newcombe 1998) with the pooled two-proportion
  z-test p-value. Correct for ONE look at the data.
- ``sequential``: the mixture sequential probability ratio test (mSPRT; Johari, Pekelis & Walsh,
  "Always valid inference", 2017 — the method behind Optimizely's stats engine) with a normal mixing
  distribution of scale ``tau``. Its interval and p-value stay valid however often the analysis runs on
  the growing data, which is exactly what a CronJob running ``analyze`` every few minutes does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Comparison:
    """One metric compared between primary and canary."""

    metric: str
    n_primary: int
    n_canary: int
    primary: float | None
    canary: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def z_for(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval for one proportion ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = z_for(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(
    k_primary: int, n_primary: int, k_canary: int, n_canary: int, confidence: float
) -> tuple[float, float]:
    """Newcombe hybrid score interval for p_canary - p_primary."""
    p1, p2 = k_primary / n_primary, k_canary / n_canary
    l1, u1 = wilson(k_primary, n_primary, confidence)
    l2, u2 = wilson(k_canary, n_canary, confidence)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return low, high


def two_proportion_p(k_primary: int, n_primary: int, k_canary: int, n_canary: int) -> float:
    """Two-sided pooled z-test p-value for equal proportions."""
    pooled = (k_primary + k_canary) / (n_primary + n_canary)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_primary + 1 / n_canary))
    if se == 0:
        return 1.0
    z = (k_canary / n_canary - k_primary / n_primary) / se
    return float(2 * stats.norm.sf(abs(z)))


def _variance(k_primary: int, n_primary: int, k_canary: int, n_canary: int) -> float:
    """Plug-in variance of the difference, floored so a run of identical outcomes is not 'certain'."""
    p1 = (k_primary + 0.5) / (n_primary + 1)
    p2 = (k_canary + 0.5) / (n_canary + 1)
    return p1 * (1 - p1) / n_primary + p2 * (1 - p2) / n_canary


def msprt(
    k_primary: int, n_primary: int, k_canary: int, n_canary: int, confidence: float, tau: float
) -> tuple[float, float, float]:
    """Always-valid (low, high, p-value) for p_canary - p_primary by the normal-mixture SPRT.

    ``tau`` is the scale of differences the test is tuned to detect (e.g. the accuracy margin).
    """
    alpha = 1 - confidence
    d = k_canary / n_canary - k_primary / n_primary
    v = _variance(k_primary, n_primary, k_canary, n_canary)
    t2 = tau * tau
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    p_value = min(1.0, math.exp(-log_lambda)) if log_lambda > 0 else 1.0
    return d - half, d + half, p_value


def compare_proportions(
    metric: str,
    k_primary: int,
    n_primary: int,
    k_canary: int,
    n_canary: int,
    confidence: float,
    method: str = "sequential",
    tau: float = 0.02,
) -> Comparison:
    """Compare a rate between variants with the chosen interval method."""
    if n_primary == 0 or n_canary == 0:
        return Comparison(
            metric,
            n_primary,
            n_canary,
            k_primary / n_primary if n_primary else None,
            k_canary / n_canary if n_canary else None,
            None,
            None,
            None,
            None,
            method,
        )
    if method == "sequential":
        low, high, p_value = msprt(k_primary, n_primary, k_canary, n_canary, confidence, tau)
    else:
        low, high = newcombe(k_primary, n_primary, k_canary, n_canary, confidence)
        p_value = two_proportion_p(k_primary, n_primary, k_canary, n_canary)
    p1, p2 = k_primary / n_primary, k_canary / n_canary
    return Comparison(metric, n_primary, n_canary, p1, p2, p2 - p1, low, high, p_value, method)


def compare_distributions(metric: str, primary: np.ndarray, canary: np.ndarray) -> Comparison:
    """Shift between two score distributions: Wasserstein-1 distance as the difference, KS test p-value."""
    primary = np.asarray(primary, dtype=float)
    canary = np.asarray(canary, dtype=float)
    primary, canary = primary[~np.isnan(primary)], canary[~np.isnan(canary)]
    if len(primary) == 0 or len(canary) == 0:
        return Comparison(
            metric, len(primary), len(canary), None, None, None, None, None, None, "wasserstein+ks"
        )
    distance = float(stats.wasserstein_distance(primary, canary))
    p_value = float(stats.ks_2samp(primary, canary).pvalue)
    return Comparison(
        metric,
        len(primary),
        len(canary),
        float(primary.mean()),
        float(canary.mean()),
        distance,
        None,
        None,
        p_value,
        "wasserstein+ks",
    )


def labels_needed(p: float, margin: float, confidence: float, tau: float) -> int:
    """Rough labeled rows per variant for the sequential interval to be narrower than ``margin``."""
    variance = max(p * (1 - p), 0.01)
    n = 10
    while n < 10_000_000:
        v = 2 * variance / n
        t2 = tau * tau
        half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / (1 - confidence)) + math.log((v + t2) / v)))
        if half < margin:
            return n
        n = int(n * 1.25) + 1
    return n
