"""The serving bench's markdown: one table per model, the engines in process, and the goals judged."""

from __future__ import annotations

from bench.loadgen import FIXED_RATE
from bench.serving_goals import predictor_goals

GOAL_VS_MLSERVER = 10.0
GOAL_VS_MLSERVER_BATCHING = 3.0
GOAL_P99_MS = 2.0
GOAL_SINK_EVENTS = 10_000
OURS = "mlstack-lean-onnx"  # the default: lean server, compiled engine, batching off


def _fmt(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _row(name: str, entry: dict) -> str:
    if "skipped" in entry or "error" in entry:
        return f"| {name} | {entry.get('skipped') or entry.get('error')} | | | | | | |"
    single, batch = entry.get("single_row", {}), entry.get("rows_32", {})
    if "saturation" not in single:
        return f"| {name} | {single.get('error', 'no result')} | | | | | | |"
    s, f = single["saturation"], single["fixed_rate"]
    b = batch.get("saturation", {})
    batch_cell = f"{b['rps']:.0f} ({b['rps'] * 32:.0f} rows/s)" if b else batch.get("error", "")
    return (
        f"| {name} | {s['rps']:.0f} | {_fmt(s.get('server_cpu_s_per_1000'), 3)} | {_fmt(s['p50_ms'])} / {_fmt(s['p99_ms'])} "
        f"| {_fmt(f['p50_ms'])} / {_fmt(f['p99_ms'])} ({f['achieved_rps']:.0f} req/s) | {batch_cell} "
        f"| {s['errors'] + f['non_200'] + b.get('errors', 0)} | {s['load_avg_before']} |"
    )


def write_markdown(report: dict) -> str:
    seconds = report["seconds_per_measurement"]
    lines = ["# Serving benchmark", ""]
    if report.get("quick"):
        lines += [
            "**QUICK MODE (BENCH_QUICK=1): 2 s per case, a check that every case runs - not a measurement.**",
            "",
        ]
    if report.get("subset"):
        lines += [f"**Subset only** (BENCH_MODELS / BENCH_SERVERS): {report['subset']}.", ""]
    lines += [
        f"Run {report['started']} on {report['machine']}; {seconds} s per measurement, loopback.",
        f"Server pinned with `{' '.join(report['pinning']['server']) or 'no pinning'}`, load generator on "
        f"{report['pinning']['load_generator']}: req/s is per server core. Saturation: `wrk -t1 -c{report['connections']}`; "
        f"fixed rate: `hey -c 4 -q {FIXED_RATE // 4}` (= {FIXED_RATE} req/s). CPU s/1k = server CPU seconds "
        "(user+system, all its processes) per 1,000 requests at saturation. `load` = 1-min load average before.",
        f"MLServer batching: max_batch_size = {report['connections']} (the connections in flight), "
        f"max_batch_time = {report['mlserver_max_batch_time_s']} s.",
        "",
    ]
    for model in ("logistic_regression", "hist_gradient_boosting"):
        entry = report["results"].get(model, {})
        lines += [f"## {model}", ""]
        if "error" in entry:
            lines += [f"error: {entry['error']}", ""]
        compiled = entry.get("compiled", {})
        if compiled:
            lines += [
                f"Compiled artifact: {'attached' if compiled.get('attached') else 'NOT attached'} - {compiled.get('reason')}",
                "",
            ]
        latency = entry.get("engine_latency", {})
        if latency and "error" not in latency:
            lines += [
                "| engine (in process, one core) | model call 1 row ms | scoring path 1 row ms | scoring path 32 rows ms | per row at 32 ms |",
                "|---|---|---|---|---|",
            ]
            for engine, numbers in latency.items():
                lines.append(
                    f"| {engine} | {numbers['model_call_ms_1_rows']} | {numbers['scoring_path_ms_1_rows']} "
                    f"| {numbers['scoring_path_ms_32_rows']} | {numbers['per_row_ms_at_32']} |"
                )
            lines.append("")
        lines += [
            "| server | 1-row req/s (per core) | CPU s/1k | p50 / p99 ms (sat.) | p50 / p99 ms at 200 req/s | 32-row req/s | errors | load |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [_row(name, server) for name, server in entry.get("servers", {}).items()]
        lines.append("")
    floor = report["results"].get("uvicorn-floor")
    if floor:
        lines += [
            f"HTTP floor (bare uvicorn, fixed JSON): {floor['saturation']['rps']:.0f} req/s at saturation, "
            f"p99 {_fmt(floor['fixed_rate']['p99_ms'])} ms at {FIXED_RATE} req/s.",
            "",
        ]
    sink = report["results"].get("sink")
    if sink:
        s, s16 = sink["ingest"], sink["ingest_16_connections"]
        lines += [
            f"Sink ingest (one process, WAL group commit with fdatasync, Parquet flushes included): "
            f"{s['rps']:.0f} events/s with {s['connections']} connections (p99 {s['p99_ms']} ms, {s['errors']} non-2xx); "
            f"{s16['rps']:.0f} events/s with 16 connections.",
            "",
        ]
    return "\n".join(lines + goals(report["results"]) + predictor_goals(report["results"]))


def _single_rps(servers: dict, name: str) -> float | None:
    return servers.get(name, {}).get("single_row", {}).get("saturation", {}).get("rps")


def goals(results: dict) -> list[str]:
    """The issue's goals, judged from this run's figures (goals, not tests)."""
    out = ["## Goals (issue 16) on this run", ""]
    for model in ("logistic_regression", "hist_gradient_boosting"):
        servers = results.get(model, {}).get("servers", {})
        ours = _single_rps(servers, OURS)
        for peer, goal in (("mlserver", GOAL_VS_MLSERVER), ("mlserver-batching", GOAL_VS_MLSERVER_BATCHING)):
            theirs = _single_rps(servers, peer)
            if ours and theirs:
                ratio = ours / theirs
                verdict = "met" if ratio >= goal else "NOT met"
                out.append(
                    f"- {model}: {OURS} single-row per core {ratio:.1f}x {peer} (goal >= {goal:g}x): {verdict} "
                    f"({ours:.0f} vs {theirs:.0f} req/s)."
                )
            else:
                out.append(f"- {model}: {OURS} vs {peer}: not measured in this run.")
    fixed = (
        results.get("logistic_regression", {})
        .get("servers", {})
        .get(OURS, {})
        .get("single_row", {})
        .get("fixed_rate")
    )
    if fixed:
        p99, reached = fixed["p99_ms"], fixed["achieved_rps"] >= 0.95 * FIXED_RATE
        verdict = "met" if reached and p99 is not None and p99 <= GOAL_P99_MS else "NOT met"
        out.append(
            f"- logistic_regression: p99 <= {GOAL_P99_MS:g} ms at {FIXED_RATE} req/s: {verdict} "
            f"(achieved {fixed['achieved_rps']:.0f} req/s, p99 {_fmt(p99)} ms)."
        )
    sink = results.get("sink", {}).get("ingest")
    if sink:
        verdict = "met" if sink["rps"] >= GOAL_SINK_EVENTS else "NOT met"
        out.append(f"- sink >= {GOAL_SINK_EVENTS:,} events/s: {verdict} ({sink['rps']:.0f} events/s).")
    out.append("")
    return out
