"""The A/B report of a canary analysis, as Markdown (for people) and JSON (for scripts)."""

from __future__ import annotations

import json
from pathlib import Path

from mlstack.monitoring.canary.analysis import Analysis


def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:+.2%}" if pct else f"{value:.4g}"
    return str(value)


def to_markdown(analysis: Analysis) -> str:
    """Verdict, reasons, per-variant sample sizes and one row per compared metric."""
    ctx = analysis.context
    title = ctx.get("inference_service", "canary")
    lines = [
        f"# A/B report: {title}",
        "",
        f"**Verdict: {analysis.verdict}** — generated {ctx.get('generated_at', '')}",
        "",
        *[f"- {reason}" for reason in analysis.reasons],
        "",
        "## Variants",
        "",
        "| role | model version | revision | logged predictions | labeled | requests (Prometheus) | 5xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in analysis.variants.values():
        metrics = variant.get("metrics") or {}
        lines.append(
            f"| {variant['role']} | {variant['version']} | {variant['revision'] or '—'} | "
            f"{variant['logged_predictions']} | {variant['labeled']} | {metrics.get('requests', '—')} | "
            f"{metrics.get('errors', '—')} |"
        )
    lines += [
        "",
        "## Metrics (difference = canary − primary)",
        "",
        "| metric | n primary | n canary | primary | canary | difference | CI low | CI high | p-value | method |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in analysis.comparisons:
        lines.append(
            f"| {c.metric} | {c.n_primary} | {c.n_canary} | {_fmt(c.primary)} | {_fmt(c.canary)} | "
            f"{_fmt(c.difference)} | {_fmt(c.ci_low)} | {_fmt(c.ci_high)} | {_fmt(c.p_value)} | {c.method} |"
        )
    lines += ["", "## Checks", "", "| check | status | on failure | detail |", "|---|---|---|---|"]
    for check in analysis.checks:
        lines.append(f"| {check.name} | {check.status} | {check.action} | {check.reason} |")
    lines += [
        "",
        f"Thresholds: {json.dumps(analysis.config)}",
        "",
        "Intervals marked `sequential` are always valid (mSPRT): they may be checked after every "
        "scheduled run without inflating false rollbacks. `fixed` intervals are valid for a single look.",
        "",
    ]
    return "\n".join(lines)


def write_report(analysis: Analysis, directory: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``directory``; return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(json.dumps(analysis.to_dict(), indent=2, default=str) + "\n")
    md_path.write_text(to_markdown(analysis))
    return json_path, md_path
