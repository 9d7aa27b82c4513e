"""`make bench-serving`: our predictor (lean and stock KServe) vs MLServer 1.7 vs `mlflow models serve`.

One run, same models, same machine, same load generators (wrk for saturation, hey for a fixed
200 req/s), single-row requests, loopback only. Plus a bare uvicorn endpoint (the HTTP floor) and
the sink's ingest rate. Writes bench/results/serving.json and serving.md.

Each measurement is bounded (``BENCH_SECONDS``, default 10 s) so the whole run takes ~10 minutes.
The machine's load average is recorded next to every figure: on a shared box it moves them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import free_port  # noqa: E402
from tests.fixtures.serving import train_model  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
MLSERVER_BIN = ROOT / "bench" / ".venvs" / "mlserver" / "bin"
RESULTS = ROOT / "bench" / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
FIXED_RATE = 200
SINK_CONNECTIONS = int(os.environ.get("BENCH_SINK_CONNECTIONS", "128"))
ROW = {
    "age": 40,
    "annual_income": 52000.0,
    "years_employed": 3.5,
    "credit_score": 700,
    "debt_to_income": 0.2,
    "loan_amount": 10000.0,
    "loan_term_months": 36,
    "interest_rate": 10.5,
    "num_open_accounts": 5,
    "num_late_payments": 0,
    "credit_utilization": 0.3,
    "months_since_last_delinquency": 12.0,
    "savings_balance": 1000.0,
    "num_dependents": 1,
    "home_ownership": "RENT",
    "loan_purpose": "car",
    "employment_type": "salaried",
    "region": "north",
}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# every server gets the same thread caps (ours sets them itself, too): one-row requests gain nothing
# from OpenMP/BLAS pools, and on a busy 2-core box a pool's spin-waits swamp the prediction
SAME_FOR_ALL = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(
    cmd: list[str], health: str, env: dict | None = None, log: Path | None = None, timeout: float = 240
):
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=os.environ | SAME_FOR_ALL | {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"} | (env or {}),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {process.returncode}; see {log}")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(process)
    raise TimeoutError(f"{health} did not come up")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _seconds(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, body: str, lua_extra: str = "", connections: int = CONNECTIONS) -> dict:
    """Throughput at saturation: wrk, 1 thread, ``connections`` connections, SECONDS seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n{lua_extra}"
        )
    load = load_average()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{SECONDS}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _seconds(lat["50"]) if "50" in lat else None,
        "p99_ms": _seconds(lat["99"]) if "99" in lat else None,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "load_avg_before": load,
        "connections": connections,
    }


def hey(url: str, body: str) -> dict:
    """Latency at a fixed FIXED_RATE req/s (4 workers x rate/4), SECONDS seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as payload:
        payload.write(body)
    load = load_average()
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{SECONDS}s",
            "-c",
            "4",
            "-q",
            str(FIXED_RATE // 4),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            payload.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dist = {k: float(v) * 1000 for k, v in re.findall(r"(\d+)%% in ([\d.]+) secs".replace("%%", "%"), out)}
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    return {
        "achieved_rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": dist.get("50"),
        "p95_ms": dist.get("95"),
        "p99_ms": dist.get("99"),
        "non_200": sum(int(n) for c, n in codes.items() if c != "200"),
        "load_avg_before": load,
    }


def measure(name: str, url: str, body: str, results: dict) -> None:
    probe = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=60)
    if probe.status_code != 200:  # a server that refuses the request would "win" on error speed
        results[name] = {"error": f"probe answered {probe.status_code}: {probe.text[:300]}"}
        return
    print(f"  {name}: saturation ...", flush=True)
    entry = {"sample_response": probe.text[:300], "saturation": wrk(url, body)}
    print(f"  {name}: {entry['saturation']['rps']:.0f} req/s; fixed {FIXED_RATE} req/s ...", flush=True)
    entry["fixed_rate"] = hey(url, body)
    results[name] = entry


def v1_body() -> str:
    return json.dumps({"instances": [ROW]})


def mlserver_body() -> str:
    inputs = []
    for key, value in ROW.items():
        if isinstance(value, str):
            inputs.append(
                {
                    "name": key,
                    "datatype": "BYTES",
                    "shape": [1],
                    "data": [value],
                    "parameters": {"content_type": "str"},
                }
            )
        else:
            inputs.append({"name": key, "datatype": "FP64", "shape": [1], "data": [float(value)]})
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


def mlflow_body() -> str:
    return json.dumps(
        {"dataframe_records": [{k: (float(v) if not isinstance(v, str) else v) for k, v in ROW.items()}]}
    )


def bench_model(label: str, model_dir: Path, work: Path, results: dict) -> None:
    print(f"model {label}", flush=True)
    out = results.setdefault(label, {})
    for server in ("lean", "kserve"):
        port = free_port()
        process = start(
            [
                str(VENV_BIN / "mlstack"),
                "serve",
                "--model",
                str(model_dir),
                "--name",
                "loans",
                "--port",
                str(port),
                "--server",
                server,
            ],
            f"http://127.0.0.1:{port}/v2/health/ready",
            {"MLSTACK_MODEL_VERSION": "1"},
            work / f"{label}-{server}.log",
        )
        try:
            measure(f"mlstack-{server}", f"http://127.0.0.1:{port}/v1/models/loans:predict", v1_body(), out)
        finally:
            stop(process)
    if (MLSERVER_BIN / "mlserver").exists():
        out["mlserver"] = bench_mlserver(model_dir, work / f"mlserver-{label}")
    else:
        out["mlserver"] = {"skipped": "bench/.venvs/mlserver not installed"}
    port = free_port()
    process = start(
        [
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "--env-manager",
            "local",
            "-w",
            "1",
        ],
        f"http://127.0.0.1:{port}/health",
        None,
        work / f"{label}-mlflow.log",
    )
    try:
        measure("mlflow-models-serve", f"http://127.0.0.1:{port}/invocations", mlflow_body(), out)
    finally:
        stop(process)


def bench_mlserver(model_dir: Path, folder: Path) -> dict:
    import joblib
    import mlflow.sklearn

    folder.mkdir(parents=True)
    joblib.dump(mlflow.sklearn.load_model(str(model_dir)), folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "loans",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    port, grpc, metrics = free_port(), free_port(), free_port()
    # parallel_workers=0: score in the server process. MLServer 1.7.1's worker pool crashes at start
    # with the uvloop its own pins install ("no current event loop"), and for a model this small the
    # pool's IPC only costs time, so this is MLServer at its fastest.
    settings = {
        "http_port": port,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "host": "127.0.0.1",
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    process = start(
        [str(MLSERVER_BIN / "mlserver"), "start", str(folder)],
        f"http://127.0.0.1:{port}/v2/models/loans/ready",
        {"PATH": f"{MLSERVER_BIN}:{os.environ['PATH']}"},
        folder / "mlserver.log",
    )
    try:
        result: dict = {}
        measure("mlserver", f"http://127.0.0.1:{port}/v2/models/loans/infer", mlserver_body(), result)
        return result["mlserver"]
    finally:
        stop(process)


def bench_floor(results: dict, work: Path) -> None:
    port = free_port()
    process = start(
        [
            str(VENV_BIN / "python"),
            "-m",
            "uvicorn",
            "bench.floor_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{port}/health",
        None,
        work / "floor.log",
    )
    try:
        measure("uvicorn-floor", f"http://127.0.0.1:{port}/", v1_body(), results)
    finally:
        stop(process)


def bench_sink(results: dict, work: Path) -> None:
    port = free_port()
    process = start(
        [
            str(VENV_BIN / "mlstack"),
            "sink",
            "--store",
            str(work / "store"),
            "--wal-dir",
            str(work / "wal"),
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}/healthz",
        None,
        work / "sink.log",
    )
    run = uuid.uuid4().hex[:8]
    lua = f"""
counter = 0
request = function()
  counter = counter + 1
  local kind = (counter % 2 == 0) and "response" or "request"
  local body = (kind == "request") and '{json.dumps(v1_body())[1:-1]}' or '{{"predictions":[0],"model_version":"1"}}'
  wrk.headers["ce-id"] = "{run}-" .. math.floor((counter + 1) / 2)
  wrk.headers["ce-type"] = "org.kubeflow.serving.inference." .. kind
  wrk.headers["ce-inferenceservicename"] = "loans"
  wrk.headers["ce-namespace"] = "bench"
  wrk.headers["ce-component"] = "predictor"
  return wrk.format("POST", "/", nil, body)
end
"""
    try:
        print("  sink ingest ...", flush=True)
        # the KServe logger posts events concurrently; throughput = in-flight events / fsync latency
        results["sink"] = {
            "ingest_16_connections": wrk(f"http://127.0.0.1:{port}/", "{}", lua, 16),
            "ingest": wrk(
                f"http://127.0.0.1:{port}/", "{}", lua.replace(f'"{run}-"', f'"{run}b-"'), SINK_CONNECTIONS
            ),
        }
    finally:
        stop(process)


def write_markdown(report: dict) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"Run {report['started']} on {report['machine']}; {SECONDS} s per measurement, single-row requests, loopback.",
        f"Saturation: `wrk -t1 -c{CONNECTIONS}`. Fixed rate: `hey -c 4 -q {FIXED_RATE // 4}` (= {FIXED_RATE} req/s).",
        "`load` is the 1-minute load average just before the measurement (the box is shared; 2 cores).",
        "",
    ]
    for model in ("logistic_regression", "hist_gradient_boosting"):
        rows = report["results"].get(model, {})
        lines += [
            f"## {model}",
            "",
            "| server | req/s at saturation | p50 / p99 ms (sat.) | p50 / p95 / p99 ms at 200 req/s | achieved req/s | errors | load |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, entry in rows.items():
            if "skipped" in entry or "error" in entry:
                lines.append(f"| {name} | {entry.get('skipped') or entry.get('error')} | | | | | |")
                continue
            s, f = entry["saturation"], entry["fixed_rate"]
            lines.append(
                f"| {name} | {s['rps']:.0f} | {s['p50_ms']} / {s['p99_ms']} | {f['p50_ms']:.2f} / {f['p95_ms']:.2f} / {f['p99_ms']:.2f} "
                f"| {f['achieved_rps']:.0f} | {s['errors'] + f['non_200']} | {s['load_avg_before']} |"
            )
        lines.append("")
    floor = report["results"].get("uvicorn-floor")
    if floor:
        lines += [
            f"HTTP floor (bare uvicorn, fixed JSON): {floor['saturation']['rps']:.0f} req/s at saturation, "
            f"p99 {floor['fixed_rate']['p99_ms']:.2f} ms at {FIXED_RATE} req/s.",
            "",
        ]
    sink = report["results"].get("sink")
    if sink:
        s = sink["ingest"]
        s16 = sink["ingest_16_connections"]
        lines += [
            f"Sink ingest (one process, WAL group commit with fdatasync, Parquet flushes included): "
            f"{s['rps']:.0f} events/s with {s['connections']} connections (p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
            f"{s['errors']} non-2xx); {s16['rps']:.0f} events/s with 16 connections (p50 {s16['p50_ms']} ms). "
            f"Load {s['load_avg_before']}.",
            "",
        ]
    lines += _goals(report["results"])
    return "\n".join(lines)


def _goals(results: dict) -> list[str]:
    """The issue's goals, judged from this run's figures (goals, not tests)."""
    out = ["## Goals (from the issue) on this run", ""]
    for model in ("logistic_regression", "hist_gradient_boosting"):
        rows = results.get(model, {})
        ours, theirs = rows.get("mlstack-lean", {}), rows.get("mlserver", {})
        if "saturation" in ours and "saturation" in theirs:
            ratio = ours["saturation"]["rps"] / max(theirs["saturation"]["rps"], 1e-9)
            out.append(
                f"- {model}: throughput {ratio:.2f}x MLServer's (goal >= 2x): {'met' if ratio >= 2 else 'NOT met'}."
            )
        if "fixed_rate" in ours:
            fixed = ours["fixed_rate"]
            p99 = fixed["p99_ms"]
            reached = fixed["achieved_rps"] >= 0.95 * FIXED_RATE
            verdict = "met" if reached and p99 is not None and p99 <= 3 else "NOT met"
            out.append(
                f"- {model}: p99 at {FIXED_RATE} req/s <= 3 ms: {verdict} "
                f"(achieved {fixed['achieved_rps']:.0f} req/s, p99 {p99} ms)."
            )
    sink = results.get("sink", {}).get("ingest")
    if sink:
        out.append(
            f"- sink >= 5,000 events/s: {'met' if sink['rps'] >= 5000 else 'NOT met'} ({sink['rps']:.0f} events/s)."
        )
    out.append("")
    return out


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()}",
        "seconds_per_measurement": SECONDS,
        "connections": CONNECTIONS,
        "fixed_rate": FIXED_RATE,
        "results": {},
    }
    try:
        for label, estimator in (
            ("logistic_regression", "logistic_regression"),
            ("hist_gradient_boosting", "hgb"),
        ):
            model_dir = train_model(work / label, estimator=estimator)
            try:
                bench_model(label, model_dir, work, report["results"])
            except Exception as exc:  # record, keep going: a partial report beats none
                report["results"].setdefault(label, {})["error"] = {"error": str(exc)}
        bench_floor(report["results"], work)
        bench_sink(report["results"], work)
    finally:
        (RESULTS / "serving.json").write_text(json.dumps(report, indent=2))
        (RESULTS / "serving.md").write_text(write_markdown(report))
        shutil.rmtree(work, ignore_errors=True)
    print((RESULTS / "serving.md").read_text())


if __name__ == "__main__":
    main()
