"""`make bench-sink`: the payload sink's ingest rate and tail, its memory under unpaired floods, and a
one-hour window read from a store holding 30 days of a busy model.

Issue 24 goal 2 and issue 27's benchmarks, in one run, the sink pinned to one core and wrk to the
other (``taskset``), server CPU per 1,000 events beside every rate:

- **ingest**: saturation with 128 connections (KServe's logger posts concurrently), and latency at
  ~5,000 events/s (wrk, 50 connections each pausing 10 ms between events); goals >= 10,000
  events/s and p99 <= 50 ms. Every event is durable before its 200 (WAL, group commit, fdatasync).
- **memory**: the sink started with the chart's bounds (``helm/mlstack/values.yaml`` sink.memory)
  flooded with unpaired 19-byte requests in rounds of ``BENCH_SINK_FLOOD_SECONDS`` until more than
  200,000 were sent and 503 began, then with 236 KB float bodies until 503 began; peak RSS against the chart's memory limit, and whether
  503 began before it.
- **window**: 30 days x 24 hourly partitions x 28 files (>= 20,000 files, >= 500,000 rows) plus a
  label file an hour; ``load_window`` for one hour, in a fresh process (time, peak RSS), beside a
  store holding only that hour's files; goal within 1.5x. Then again after ``mlstack payloads compact``.

Writes bench/results/sink.{json,md}. ``BENCH_QUICK=1``: short runs, a small store, results in bench/.work/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import serving_peers as peers  # noqa: E402
from bench.loadgen import SERVER_PIN, load_average, wrk  # noqa: E402
from mlstack.core.procs import free_port  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1" or "--quick" in sys.argv
SECONDS = 3 if QUICK else int(os.environ.get("BENCH_SECONDS", "15"))
FLOOD_SECONDS = 5 if QUICK else int(os.environ.get("BENCH_SINK_FLOOD_SECONDS", "30"))
DAYS, FILES_PER_HOUR, ROWS_PER_FILE = (2, 3, 5) if QUICK else (30, 28, 25)
RESULTS = ROOT / "bench" / (".work" if QUICK else "results")
GOAL_EVENTS, GOAL_P99_MS, GOAL_WINDOW_RATIO = 10_000, 50.0, 1.5
REQUEST = (
    '{"instances": [{"age": 40, "annual_income": 52000.0, "years_employed": 3.5, "credit_score": 700, '
    '"debt_to_income": 0.2, "loan_amount": 10000.0, "loan_term_months": 36, "interest_rate": 10.5, '
    '"num_open_accounts": 5, "num_late_payments": 0, "credit_utilization": 0.3, '
    '"months_since_last_delinquency": 12.0, "savings_balance": 1000.0, "num_dependents": 1, '
    '"home_ownership": "RENT", "loan_purpose": "car", "employment_type": "salaried", "region": "north"}]}'
)
PAIRS_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local kind = (counter %% 2 == 0) and "response" or "request"
  local body = (kind == "request") and '%s' or '{"predictions":[0],"model_version":"1"}'
  wrk.headers["ce-id"] = "%s-" .. math.floor((counter + 1) / 2)
  wrk.headers["ce-type"] = "org.kubeflow.serving.inference." .. kind
  wrk.headers["ce-inferenceservicename"] = "loans"
  wrk.headers["ce-namespace"] = "bench"
  wrk.headers["ce-component"] = "predictor"
  return wrk.format("POST", "/", nil, body)
end
"""
UNPAIRED_LUA = """
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["ce-id"] = "%s-" .. counter
  wrk.headers["ce-type"] = "org.kubeflow.serving.inference.request"
  wrk.headers["ce-inferenceservicename"] = "loans"
  return wrk.format("POST", "/", nil, '%s')
end
"""


def chart_values() -> dict:
    return yaml.safe_load((ROOT / "helm" / "mlstack" / "values.yaml").read_text())["sink"]


def quantity_bytes(text: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix, factor in units.items():
        if str(text).endswith(suffix):
            return int(float(str(text)[: -len(suffix)]) * factor)
    return int(text)


def start_sink(work: Path, env: dict | None = None):
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(peers.VENV_BIN / "mlstack"),
        "sink",
        "--store",
        str(work / "store"),
        "--wal-dir",
        str(work / "wal"),
    ]
    env = {"MLSTACK_HOME": str(work / "home")} | (env or {})
    process = peers.start(
        cmd + ["--port", str(port)], f"http://127.0.0.1:{port}/healthz", env, work / "sink.log"
    )
    return process, f"http://127.0.0.1:{port}"


def bench_ingest(work: Path) -> dict:
    process, url = start_sink(work / "ingest")
    try:
        run = uuid.uuid4().hex[:8]
        saturation = wrk(f"{url}/", "{}", SECONDS, 128, process.pid, PAIRS_LUA % (REQUEST, run))
        paced = PAIRS_LUA % (REQUEST, run + "p") + "\nfunction delay() return 10 end\n"
        fixed = wrk(f"{url}/", "{}", SECONDS, 50, process.pid, paced)
        return {"saturation_128": saturation, "paced_50x10ms": fixed}
    finally:
        peers.stop(process)


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        process = psutil.Process(self.pid)
        while self.running:
            try:
                self.peak = max(
                    self.peak, sum(p.memory_info().rss for p in [process, *process.children(True)])
                )
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def bench_memory(work: Path) -> dict:
    values = chart_values()
    limit = quantity_bytes(values["resources"]["limits"]["memory"])
    bounds = values["memory"]
    env = {
        "MLSTACK_SINK__MAX_PENDING_BYTES": str(bounds["maxPendingBytes"]),
        "MLSTACK_SINK__MAX_PENDING_EVENTS": str(bounds["maxPendingEvents"]),
        "MLSTACK_SINK__PAIR_TIMEOUT_SECONDS": "3600",
    }
    out: dict = {"chart_limit_bytes": limit, "bounds": bounds}
    big = json.dumps({"instances": [[i / 7 + 0.123456789 for i in range(100)] for _ in range(130)]})
    for name, body, seconds in (
        ("small_19_bytes", '{"instances":[[1]]}', FLOOD_SECONDS),
        ("floats_236kb", big, max(5, FLOOD_SECONDS // 3)),
    ):
        process, url = start_sink(work / name, env)
        sampler = RssSampler(process.pid)
        baseline = psutil.Process(process.pid).memory_info().rss
        sampler.start()
        result = {"requests": 0, "errors": 0, "load_avg_before": load_average()}
        wanted = 200_000 if name == "small_19_bytes" else 0
        deadline = time.monotonic() + 20 * seconds
        try:  # in rounds until 503 began past the wanted count of events (a loaded machine is slow)
            while time.monotonic() < deadline and not (result["errors"] and result["requests"] >= wanted):
                lua = UNPAIRED_LUA % (uuid.uuid4().hex[:8], body)
                round_ = wrk(f"{url}/", "{}", seconds, 64, process.pid, lua)
                result["requests"] += round_["requests"]
                result["errors"] += round_["errors"]
            metrics = httpx.get(f"{url}/metrics", timeout=30).text
        finally:
            sampler.running = False
            sampler.join()
            peers.stop(process)
        out[name] = {
            "body_bytes": len(body),
            "events_sent": result["requests"],
            "answered_503": result["errors"],
            "held_events_at_end": _metric(metrics, "mlstack_sink_held_events"),
            "held_bytes_at_end": _metric(metrics, "mlstack_sink_held_bytes"),
            "rss_baseline_mib": round(baseline / 2**20, 1),
            "rss_peak_mib": round(sampler.peak / 2**20, 1),
            "under_chart_limit": sampler.peak < limit,
            "backpressure_before_limit": result["errors"] > 0 and sampler.peak < limit,
            "load_avg_before": result["load_avg_before"],
        }
    return out


def build_store(root: Path, now: datetime) -> dict:
    """30 days of hourly partitions of one busy model, ~28 small files an hour, a label file an hour."""
    import pandas as pd

    from mlstack.core import payload

    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
    files = rows = 0
    for hour in range(DAYS * 24):
        when = start + timedelta(hours=hour)
        for part in range(FILES_PER_HOUR):
            stamps = [when + timedelta(seconds=part * 100 + i) for i in range(ROWS_PER_FILE)]
            frame = pd.DataFrame(
                {
                    "request_id": [f"{hour}-{part}-{i}" for i in range(ROWS_PER_FILE)],
                    "row_index": 0,
                    "inference_service": "busy",
                    "namespace": "ml",
                    "component": "predictor",
                    "model_name": "busy",
                    "model_version": "3",
                    "requested_at": stamps,
                    "responded_at": stamps,
                    "prediction": 1,
                    "probability": 0.7,
                    "age": [float(i) for i in range(ROWS_PER_FILE)],
                    "region": "north",
                }
            )
            payload.write_predictions(str(root), frame)
            files, rows = files + 1, rows + len(frame)
        labels = pd.DataFrame(
            {
                "request_id": [f"{hour}-0-{i}" for i in range(ROWS_PER_FILE)],
                "row_index": 0,
                "label": 1,
                "received_at": when + timedelta(minutes=50),
            }
        )
        payload.write_feedback(str(root), labels)
        files += 1
    return {"files": files, "prediction_rows": rows, "days": DAYS}


READ = """
import json, resource, sys, time
from datetime import datetime
from mlstack.core import payload
since = datetime.fromisoformat(sys.argv[2])
started = time.perf_counter()
report = payload.ReadReport()
frame = payload.load_window(sys.argv[1], "busy", since, since.replace(minute=59, second=59), report=report)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": len(frame), "labels": int(frame["label"].notna().sum()),
                  "files_opened": report.files, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def read_window(store: Path, since: datetime, repeats: int = 3) -> dict:
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [*SERVER_PIN, sys.executable, "-c", READ, str(store), since.isoformat()],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["seconds"])
    return runs[len(runs) // 2] | {"load_avg": load_average()}


def bench_window(work: Path) -> dict:
    from mlstack.core.compaction import compact

    now = datetime.now(UTC)
    big = work / "month"
    started = time.perf_counter()
    built = build_store(big, now)
    built["build_seconds"] = round(time.perf_counter() - started, 1)
    since = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    small = work / "hour"
    for sub in (
        f"predictions/inference_service=busy/model_version=3/date={since:%Y-%m-%d}/hour={since:%H}",
        f"feedback/date={since:%Y-%m-%d}/hour={since:%H}",
    ):
        shutil.copytree(big / sub, small / sub)
    out = {
        "store": built,
        "window_start": since.isoformat(),
        "month": read_window(big, since),
        "hour_only": read_window(small, since),
    }
    started = time.perf_counter()
    out["compaction"] = compact(str(big), min_age=timedelta(hours=2)).to_dict() | {
        "seconds": round(time.perf_counter() - started, 1)
    }
    out["month_compacted"] = read_window(big, since)
    for key in ("seconds", "peak_rss_mib"):
        out[f"ratio_{key}"] = round(out["month"][key] / out["hour_only"][key], 2)
    return out


def markdown(report: dict) -> str:
    lines = [f"# Sink benchmarks ({report['started']}, {report['machine']})", ""]
    ingest = report["results"].get("ingest")
    if ingest:
        sat, paced = ingest["saturation_128"], ingest["paced_50x10ms"]
        lines += [
            "## Ingest (one sink process on one core; WAL group commit with fdatasync)",
            "",
            "| load | events/s | p50 ms | p99 ms | server CPU s / 1k events | load avg |",
            "|---|---|---|---|---|---|",
            f"| saturation, 128 connections | {sat['rps']:.0f} | {sat['p50_ms']} | {sat['p99_ms']} | {sat.get('server_cpu_s_per_1000')} | {sat['load_avg_before']} |",
            f"| paced, 50 connections x 10 ms | {paced['rps']:.0f} | {paced['p50_ms']} | {paced['p99_ms']} | {paced.get('server_cpu_s_per_1000')} | {paced['load_avg_before']} |",
            "",
        ]
    memory = report["results"].get("memory")
    if memory:
        lines += [
            f"## Memory under unpaired floods (chart limit {memory['chart_limit_bytes'] // 2**20} MiB, bounds {memory['bounds']})",
            "",
            "| body | events sent | answered 503 | held events at end | RSS before MiB | peak RSS MiB | under the limit |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("small_19_bytes", "floats_236kb"):
            r = memory[name]
            lines.append(
                f"| {name} | {r['events_sent']} | {r['answered_503']} | {r['held_events_at_end']} | {r['rss_baseline_mib']} | {r['rss_peak_mib']} | {r['under_chart_limit']} |"
            )
        lines.append("")
    window = report["results"].get("window")
    if window:
        lines += [
            f"## A 1 h window over {window['store']['days']} days ({window['store']['files']} files, {window['store']['prediction_rows']} rows; built in {window['store']['build_seconds']} s)",
            "",
            "| store | seconds | peak RSS MiB | files opened | rows | labels |",
            "|---|---|---|---|---|---|",
        ]
        for key, label in (
            ("hour_only", "only that hour"),
            ("month", "30 days, as the sink writes it"),
            ("month_compacted", "30 days, compacted"),
        ):
            r = window[key]
            lines.append(
                f"| {label} | {r['seconds']:.3f} | {r['peak_rss_mib']:.0f} | {r['files_opened']} | {r['rows']} | {r['labels']} |"
            )
        lines += ["", f"Compaction: {window['compaction']}", ""]
    lines += ["## Goals", "", *[f"- {g}" for g in report["goals"]], ""]
    return "\n".join(lines)


def goals(results: dict) -> list[str]:
    out = []
    ingest = results.get("ingest")
    if ingest:
        rps, p99 = ingest["saturation_128"]["rps"], ingest["paced_50x10ms"]["p99_ms"]
        out.append(
            f"sink >= {GOAL_EVENTS:,} events/s: {'met' if rps >= GOAL_EVENTS else 'NOT met'} ({rps:.0f}, {rps / GOAL_EVENTS:.2f}x the goal)"
        )
        paced = ingest["paced_50x10ms"]["rps"]
        out.append(
            f"p99 <= {GOAL_P99_MS:.0f} ms at ~5,000 events/s: {'met' if p99 is not None and p99 <= GOAL_P99_MS else 'NOT met'} (p99 {p99} ms at {paced:.0f} events/s)"
        )
    memory = results.get("memory")
    if memory:
        small = memory["small_19_bytes"]
        ok = (
            small["under_chart_limit"]
            and small["backpressure_before_limit"]
            and small["events_sent"] >= 200_000
        )
        out.append(
            f"sink under >= 200k unpaired events stays under the chart limit and answers 503 before it: {'met' if ok else 'NOT met'} ({small['events_sent']} sent, {small['answered_503']} answered 503, peak {small['rss_peak_mib']} MiB)"
        )
    window = results.get("window")
    if window:
        ratio = max(window["ratio_seconds"], window["ratio_peak_rss_mib"])
        out.append(
            f"1 h window over 30 days within {GOAL_WINDOW_RATIO}x of a one-hour store (time and RSS): {'met' if ratio <= GOAL_WINDOW_RATIO else 'NOT met'} (time {window['ratio_seconds']}x, RSS {window['ratio_peak_rss_mib']}x)"
        )
    return out


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    parts = [p for p in os.environ.get("BENCH_SINK_PARTS", "ingest,memory,window").split(",") if p]
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": QUICK,
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()}",
        "pinning": {"server": SERVER_PIN, "load_generator": "the other core"},
        "load_avg_start": load_average(),
        "results": {},
    }
    suffix = ".quick" if QUICK else ""
    try:
        for part, run in (("ingest", bench_ingest), ("memory", bench_memory), ("window", bench_window)):
            if part in parts:
                print(f"sink bench: {part} ...", flush=True)
                try:
                    report["results"][part] = run(work)
                except Exception as exc:  # record, keep going: a partial report beats none
                    report["results"][part + "_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        report["load_avg_end"] = load_average()
        report["goals"] = goals(report["results"])
        (RESULTS / f"sink{suffix}.json").write_text(json.dumps(report, indent=2))
        (RESULTS / f"sink{suffix}.md").write_text(markdown(report))
        shutil.rmtree(work, ignore_errors=True)
    print((RESULTS / f"sink{suffix}.md").read_text())


if __name__ == "__main__":
    main()
