"""Issue 24 (speed: predictor, start-up, binary extension) and issue 27 (a 600 MiB chunked body) in the
serving bench's markdown: the figures of this run and each goal judged met or not met, with its ratio."""

from __future__ import annotations

from bench.loadgen import FIXED_RATE

GOAL_RPS = 6000
GOAL_FLOOR_SHARE = 0.19
GOAL_P99_MS = 2.0
GOAL_CPU_PER_1K = 0.17
GOAL_STARTUP_S = 2.0
OURS = "mlstack-lean-onnx"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _sat(entry: dict, key: str) -> dict:
    return (entry.get(key) or {}).get("saturation") or entry.get(key) or {}


def predictor_goals(results: dict) -> list[str]:
    floor = results.get("uvicorn-floor", {}).get("saturation", {}).get("rps")
    out = ["## Goals (issue 24, 27) on this run", ""]
    if floor:
        out.append(f"HTTP floor (bare uvicorn, fixed JSON): {floor:.0f} req/s per core.")
    for model in ("logistic_regression", "hist_gradient_boosting"):
        entry = results.get(model, {})
        ours = entry.get("servers", {}).get(OURS, {})
        ceiling = entry.get("ceiling", {})
        if ceiling.get("rps"):
            share = f" ({ceiling['rps'] / floor:.1%} of the floor)" if floor else ""
            out.append(
                f"- {model}: model-call-only ceiling (uvicorn + ONNX call): {ceiling['rps']:.0f} req/s{share}."
            )
        for key, label in (("single_row", "one-row v1"), ("single_row_v2", "one-row v2")):
            sat = _sat(ours, key)
            if not sat.get("rps"):
                out.append(f"- {model}: {label}: not measured in this run.")
                continue
            rps, cpu = sat["rps"], sat.get("server_cpu_s_per_1000")
            share = rps / floor if floor else 0.0
            out.append(
                f"- {model}: {OURS} {label} >= {GOAL_RPS:,} req/s per core and >= {GOAL_FLOOR_SHARE:.0%} of the "
                f"floor: {_verdict(rps >= GOAL_RPS and share >= GOAL_FLOOR_SHARE)} ({rps:.0f} req/s = "
                f"{rps / GOAL_RPS:.2f}x the goal, {share:.1%} of the floor)."
            )
            if cpu is not None:
                out.append(
                    f"- {model}: {label} CPU <= {GOAL_CPU_PER_1K} s per 1,000 requests: "
                    f"{_verdict(cpu <= GOAL_CPU_PER_1K)} ({cpu:.3f} s, {cpu / GOAL_CPU_PER_1K:.2f}x the budget)."
                )
        fixed = (ours.get("single_row") or {}).get("fixed_rate")
        if fixed:
            p99, reached = fixed["p99_ms"], fixed["achieved_rps"] >= 0.95 * FIXED_RATE
            out.append(
                f"- {model}: p99 <= {GOAL_P99_MS:g} ms at {FIXED_RATE} req/s: "
                f"{_verdict(reached and p99 is not None and p99 <= GOAL_P99_MS)} (p99 {p99} ms at "
                f"{fixed['achieved_rps']:.0f} req/s, p50 {fixed['p50_ms']} ms)."
            )
        v2 = ours.get("v2_32_rows", {})
        if "json" in v2:
            j, b = v2["json"], v2["binary"]
            out.append(
                f"- {model}: v2 at 32 rows, JSON {j['rps']:.0f} req/s ({v2['json_bytes']} B, "
                f"{j.get('server_cpu_s_per_1000')} CPU s/1k) vs binary tensors {b['rps']:.0f} req/s "
                f"({v2['binary_bytes']} B, {b.get('server_cpu_s_per_1000')} CPU s/1k): {b['rps'] / j['rps']:.2f}x."
            )
        elif v2:
            out.append(f"- {model}: v2 JSON vs binary: {v2.get('error')}.")
    out += ["", *_startup(results.get("startup")), *_chunked(results.get("chunked_body")), ""]
    return out


def _startup(startup: dict | None) -> list[str]:
    if not startup:
        return []
    out = ["Start-up, process start to ready (median of runs; CPU seconds spent by then):", ""]
    for name, numbers in startup.items():
        if "error" in numbers:
            out.append(f"- {name}: {numbers['error']}")
            continue
        out.append(
            f"- {name}: {numbers['ready_s_median']:.2f} s (min {numbers['ready_s_min']:.2f} s, "
            f"CPU {numbers['cpu_s_median']} s, {numbers['runs']} runs)"
        )
    serve = startup.get("mlstack_serve_lean_onnx", {})
    if "ready_s_median" in serve:
        seconds = serve["ready_s_median"]
        out.append(
            f"- goal: `mlstack serve` (compiled engine) ready in <= {GOAL_STARTUP_S:g} s: "
            f"{_verdict(seconds <= GOAL_STARTUP_S)} ({seconds:.2f} s, {seconds / GOAL_STARTUP_S:.2f}x the goal)."
        )
    return [*out, ""]


def _chunked(result: dict | None) -> list[str]:
    if not result:
        return []
    if "peak_growth_mib" not in result:
        return [f"Chunked body: {result}", ""]
    limit = result["body_limit_mib"]
    grown = result["peak_growth_mib"]
    return [
        f"Chunked {result['body_mib']} MiB POST to the lean predictor (body limit {limit:g} MiB): answered "
        f"{result['status']} in {result['seconds']} s; RSS {result['rss_before_mib']} MiB before, peak "
        f"{result['peak_rss_mib']} MiB (+{grown} MiB); alive after: {result['alive_after']}.",
        f"- goal (issue 27): RSS growth within 2x the body limit: {_verdict(grown <= 2 * limit)} "
        f"(+{grown} MiB = {grown / limit:.2f}x the limit).",
        "",
    ]
