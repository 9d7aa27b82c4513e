"""The demo's HTML report: drift over time, the traffic split, the A/B comparison, the verdict.

Self-contained (inline CSS and SVG, no scripts, nothing fetched), so it opens from disk anywhere.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0a3069", "#57606a", "#bf3989"]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def line_chart(
    series: dict[str, list[float | None]],
    labels: list[str],
    title: str,
    threshold: float | None = None,
    width: int = 720,
    height: int = 260,
) -> str:
    """An SVG line chart: one line per series over the same x labels; an optional dashed threshold."""
    pad_l, pad_r, pad_t, pad_b = 48, 160, 28, 40
    values = [v for line in series.values() for v in line if v is not None]
    top = max(values + ([threshold] if threshold is not None else []) + [1e-9]) * 1.1
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * i / (n - 1)

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - v / top)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
        f'<text x="{pad_l}" y="16" class="ct">{_e(title)}</text>',
        f'<line x1="{pad_l}" y1="{y(0)}" x2="{width - pad_r}" y2="{y(0)}" stroke="#888"/>',
    ]
    for k in range(5):
        v = top * k / 4
        parts.append(f'<text x="{pad_l - 6}" y="{y(v) + 4}" text-anchor="end" class="ax">{v:.2f}</text>')
        parts.append(f'<line x1="{pad_l}" y1="{y(v)}" x2="{width - pad_r}" y2="{y(v)}" stroke="#eee"/>')
    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{x(i)}" y="{height - pad_b + 16}" text-anchor="middle" class="ax">{_e(label)}</text>'
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{pad_l}" y1="{y(threshold)}" x2="{width - pad_r}" y2="{y(threshold)}" '
            f'stroke="#cf222e" stroke-dasharray="6 4"/>'
            f'<text x="{width - pad_r + 4}" y="{y(threshold) + 4}" class="ax">threshold {threshold}</text>'
        )
    for idx, (name, line) in enumerate(series.items()):
        color = PALETTE[idx % len(PALETTE)]
        points = [(x(i), y(v)) for i, v in enumerate(line) if v is not None]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
            parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in points]
        parts.append(
            f'<rect x="{width - pad_r + 8}" y="{pad_t + 16 * idx}" width="10" height="10" fill="{color}"/>'
            f'<text x="{width - pad_r + 22}" y="{pad_t + 9 + 16 * idx}" class="ax">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: dict[str, float], title: str, width: int = 720, unit: str = "") -> str:
    """Horizontal SVG bars, labelled with their values."""
    row, pad_l = 28, 170
    height = 30 + row * len(bars)
    top = max(list(bars.values()) + [1e-9])
    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
        f'<text x="0" y="16" class="ct">{_e(title)}</text>',
    ]
    for i, (name, value) in enumerate(bars.items()):
        y = 26 + row * i
        w = (width - pad_l - 90) * value / top
        parts.append(
            f'<text x="{pad_l - 8}" y="{y + 16}" text-anchor="end" class="ax">{_e(name)}</text>'
            f'<rect x="{pad_l}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{pad_l + w + 6}" y="{y + 16}" class="ax">{value:g}{unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _prediction_score(window: dict) -> float | None:
    drift = window.get("prediction_drift")
    return drift.get("score") if isinstance(drift, dict) else drift


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(summary: dict[str, Any]) -> str:
    """The report's HTML for a demo ``summary`` (see ``mlstack.demo.run`` for its keys)."""
    model = summary["model_name"]
    windows = summary["drift_windows"]
    labels = [w["label"] for w in windows]
    drift_chart = line_chart(
        {
            "drifted feature share": [w.get("drifted_share") for w in windows],
            "prediction drift": [_prediction_score(w) for w in windows],
        },
        labels,
        "Drift per window (champion traffic)",
        threshold=summary.get("drift_share_threshold"),
    )
    top_features = summary.get("top_drift_features", [])
    feature_chart = line_chart(
        {
            name: [(w.get("features") or {}).get(name, {}).get("score") for w in windows]
            for name in top_features
        },
        labels,
        "Drift score of the most drifted features",
    )
    traffic = summary["traffic"]
    traffic_chart = bar_chart(
        {f"version {v} ({role})": count for v, role, count in traffic["by_version"]},
        f"Requests answered per model version (configured split {traffic['split']})",
    )
    window_rows = [
        [
            _e(w["label"]),
            w.get("rows", 0),
            _e(w.get("status")),
            "yes" if w.get("drift_detected") else "no",
            _num(w.get("drifted_share"), 3),
            _num(_prediction_score(w), 3),
            (f'<a href="{_e(w["report"])}">Evidently report</a>' if w.get("report") else "—"),
        ]
        for w in windows
    ]
    ab = summary["analysis"]
    comparison_rows = [
        [
            _e(c["metric"]),
            c.get("n_primary"),
            c.get("n_canary"),
            _num(c.get("primary")),
            _num(c.get("canary")),
            _num(c.get("difference")),
            f"[{_num(c.get('ci_low'))}, {_num(c.get('ci_high'))}]",
            _num(c.get("p_value")),
            _e(c.get("method", "")),
        ]
        for c in ab.get("comparisons", [])
    ]
    variant_rows = [
        [_e(v["role"]), _e(v["version"]), v.get("logged_predictions"), v.get("labeled")]
        for v in ab.get("variants", {}).values()
    ]
    check_rows = [[_e(c["name"]), _e(c["status"]), _e(c["reason"])] for c in ab.get("checks", [])]
    before, after = summary["aliases_before"], summary["aliases_after"]
    alias_rows = [
        [_e(a), _e(before.get(a, "—")), _e(after.get(a, "—"))] for a in ("champion", "challenger", "previous")
    ]
    version_rows = [
        [
            _e(v["version"]),
            _e(v["aliases"]),
            _num(v["metrics"].get("roc_auc")),
            _num(v["metrics"].get("pr_auc")),
            _num(v["metrics"].get("brier")),
            _e(v.get("data", "")),
        ]
        for v in summary["versions"]
    ]
    verdict = ab.get("verdict", "?")
    color = {"promote": "#1a7f37", "rollback": "#cf222e"}.get(verdict, "#9a6700")
    links = "".join(
        f'<li><a href="{_e(href)}">{_e(text)}</a></li>' for text, href in summary.get("links", [])
    )
    timings = _table(
        ["step", "seconds"], [[_e(k), f"{v:.1f}"] for k, v in summary.get("timings", {}).items()]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlstack demo: {_e(model)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#1f2328;padding:0 1rem}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #d0d7de;padding:4px 10px;text-align:left}}
th{{background:#f6f8fa}}.ct{{font-weight:600;font-size:14px}}.ax{{font-size:11px;fill:#57606a}}
.verdict{{font-size:1.4rem;font-weight:700;color:{color}}}section{{margin-bottom:2rem}}
</style></head><body>
<h1>mlstack demo — <code>{_e(model)}</code></h1>
<p>Generated {_e(summary["generated_at"])}. {summary["requests"]} requests replayed over
{_e(summary["period"])} of simulated time; drift scenario <code>{_e(summary["scenario"])}</code> injected
from {_e(summary["drift_from"])}; {summary["labeled"]} requests got a ground-truth label.</p>
<section><h2>Canary verdict: <span class="verdict">{_e(verdict)}</span></h2>
<ul>{"".join(f"<li>{_e(r)}</li>" for r in ab.get("reasons", []))}</ul>
<h3>MLflow aliases</h3>{_table(["alias", "before", "after"], alias_rows)}</section>
<section><h2>Model versions</h2>{_table(["version", "aliases at training", "roc_auc", "pr_auc", "brier", "trained on"], version_rows)}</section>
<section><h2>Traffic split</h2>{traffic_chart}</section>
<section><h2>Drift over time</h2>{drift_chart}{feature_chart}
{_table(["window", "rows", "status", "drift", "drifted share", "prediction drift", "report"], window_rows)}</section>
<section><h2>A/B comparison (canary − primary)</h2>
{_table(["role", "model version", "logged predictions", "labeled"], variant_rows)}
{_table(["metric", "n primary", "n canary", "primary", "canary", "difference", "confidence interval", "p-value", "method"], comparison_rows)}
{_table(["check", "status", "detail"], check_rows)}</section>
<section><h2>Links</h2><ul>{links}</ul></section>
<section><h2>Timings</h2>{timings}</section>
</body></html>
"""


def write(summary: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(render(summary))
    return path
