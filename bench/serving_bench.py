"""`make bench-serving`: our predictor (both engines, lean and stock KServe) vs MLServer 1.7.1 (stock and
with adaptive batching) vs `mlflow models serve`, LR and HGB, single-row and 32-row requests.

One run, the same model directory for every server, loopback only. Each server is pinned to one
core and wrk/hey to the other (``taskset``), so req/s is throughput per server core; the server's
CPU seconds per 1,000 requests are recorded beside it. Plus the in-process per-row latency of both
engines, a bare uvicorn endpoint (the HTTP floor) and the sink's ingest rate. Writes
bench/results/serving.{json,md} with the issue's goals judged.

``BENCH_QUICK=1`` (or ``--quick``): 2 s per measurement, results in bench/.work/serving.quick.{json,md}
(git-ignored, never in the summary) - a check that every case runs, not a measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import serving_extra as extra  # noqa: E402
from bench import serving_peers as peers  # noqa: E402
from bench.loadgen import FIXED_RATE, SERVER_PIN, hey, load_average, wrk  # noqa: E402
from bench.serving_report import write_markdown  # noqa: E402
from mlstack.core.procs import free_port  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1" or "--quick" in sys.argv
SECONDS = 2 if QUICK else int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SINK_CONNECTIONS = int(os.environ.get("BENCH_SINK_CONNECTIONS", "128"))
RESULTS = ROOT / "bench" / (".work" if QUICK else "results")
BATCH_ROWS = 32
ALL_MODELS = ("logistic_regression", "hist_gradient_boosting")
# subsets for a check on a busy machine: BENCH_MODELS / BENCH_SERVERS, comma-separated names
MODELS = tuple(m for m in os.environ.get("BENCH_MODELS", ",".join(ALL_MODELS)).split(",") if m)
SERVERS = {s for s in os.environ.get("BENCH_SERVERS", "").split(",") if s}
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


def rows_of(count: int) -> list[dict]:
    return [ROW | {"age": 20 + i, "credit_score": 600 + 5 * i} for i in range(count)]


def body(body_format: str, count: int) -> str:
    rows = rows_of(count)
    if body_format == "v1":
        return json.dumps({"instances": rows})
    if body_format == "mlflow":
        return json.dumps(
            {
                "dataframe_records": [
                    {k: v if isinstance(v, str) else float(v) for k, v in r.items()} for r in rows
                ]
            }
        )
    inputs = []
    for key, value in ROW.items():
        column = [r[key] for r in rows]
        if isinstance(value, str):
            inputs.append(
                {
                    "name": key,
                    "datatype": "BYTES",
                    "shape": [count],
                    "data": column,
                    "parameters": {"content_type": "str"},
                }
            )
        else:
            inputs.append(
                {"name": key, "datatype": "FP64", "shape": [count], "data": [float(v) for v in column]}
            )
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


def measure(running: peers.Running) -> dict:
    """Single-row and 32-row saturation, and single-row latency at a fixed 200 req/s."""
    pid = running.process.pid
    entry: dict = {"notes": running.notes}
    for count, key in ((1, "single_row"), (BATCH_ROWS, f"rows_{BATCH_ROWS}")):
        payload = body(running.body_format, count)
        probe = httpx.post(
            running.url, content=payload, headers={"content-type": "application/json"}, timeout=60
        )
        if probe.status_code != 200:  # a server that refuses the request would "win" on error speed
            entry[key] = {"error": f"probe answered {probe.status_code}: {probe.text[:300]}"}
            continue
        result = {
            "sample_response": probe.text[:200],
            "saturation": wrk(running.url, payload, SECONDS, CONNECTIONS, pid),
        }
        if count == 1:
            result["fixed_rate"] = hey(running.url, payload, SECONDS, pid)
        print(f"    {key}: {result['saturation']['rps']:.0f} req/s", flush=True)
        entry[key] = result
    return entry


def server_cases(model_dir: Path, work: Path, label: str):
    """(name, starter) for every server of one model, in the order they run."""
    cases = []
    for server in ("lean", "kserve"):
        for engine in ("onnx", "sklearn"):
            for batching in (False, True) if server == "lean" else (False,):
                name = f"mlstack-{server}-{engine}" + ("-batching" if batching else "")
                setting = "auto" if engine == "onnx" else "sklearn"
                cases.append(
                    (
                        name,
                        lambda s=server, e=setting, b=batching, n=name: peers.mlstack(
                            model_dir, work, f"{label}-{n}", s, e, b
                        ),
                    )
                )
    for batching in (False, True):
        name = "mlserver-batching" if batching else "mlserver"
        cases.append(
            (name, lambda b=batching, n=name: peers.mlserver(model_dir, work, f"{label}-{n}", b, CONNECTIONS))
        )
    cases.append(("mlflow-models-serve", lambda: peers.mlflow_serve(model_dir, work, f"{label}-mlflow")))
    return cases


def bench_model(label: str, model_dir: Path, work: Path) -> dict:
    print(f"model {label}", flush=True)
    out: dict = {}
    for name, starter in server_cases(model_dir, work, label):
        if SERVERS and name not in SERVERS:
            continue
        if name.startswith("mlserver") and not peers.mlserver_installed():
            out[name] = {"skipped": "bench/.venvs/mlserver not installed (make bench-serving installs it)"}
            continue
        print(f"  {name}", flush=True)
        try:
            running = starter()
        except Exception as exc:  # record, keep going: a partial report beats none
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        try:
            out[name] = measure(running)
            if name == "mlstack-lean-onnx":  # issue 24: one-row v2, and v2 JSON vs binary at 32 rows
                v2_url = running.url.replace(":predict", "").replace("/v1/", "/v2/") + "/infer"
                pid = running.process.pid
                out[name]["single_row_v2"] = wrk(v2_url, body("v2", 1), SECONDS, CONNECTIONS, pid)
                out[name]["v2_32_rows"] = extra.v2_json_vs_binary(
                    v2_url, body("v2", BATCH_ROWS), pid, SECONDS, CONNECTIONS
                )
        finally:
            peers.stop(running.process)
    return out


def train_bench_model(path: Path, estimator: str) -> dict:
    """The training step's pipeline on 20k generated rows, saved with its compiled artifact if it passes."""
    from mlstack.components.compile import save_model_dir
    from mlstack.components.train import split, train
    from mlstack.core import generator
    from mlstack.core.settings import TrainingConfig

    contract = generator.loan_contract()
    config = TrainingConfig(estimator=estimator)
    train_frame, eval_frame = split(generator.generate(20_000, seed=0), contract, config)
    pipeline = train(train_frame, contract, config)
    result = save_model_dir(pipeline, path, contract, config.threshold, eval_frame, config.compile)
    return {"attached": result.attached, "reason": result.reason, **result.tags}


def engine_latency(model_dir: Path) -> dict:
    """Per-row latency of both engines in process, pinned to the server core (bench/engine_latency.py)."""
    repeats = "200" if QUICK else "3000"
    cmd = [*SERVER_PIN, sys.executable, str(ROOT / "bench" / "engine_latency.py"), str(model_dir), repeats]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ | peers.SAME_FOR_ALL)
    if out.returncode != 0:
        return {"error": out.stderr[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_floor(work: Path) -> dict:
    port = free_port()
    cmd = [str(peers.VENV_BIN / "python"), "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    process = peers.start(
        cmd + ["--no-access-log", "--log-level", "warning"],
        f"http://127.0.0.1:{port}/health",
        None,
        work / "floor.log",
    )
    try:
        payload = body("v1", 1)
        return {
            "saturation": wrk(f"http://127.0.0.1:{port}/", payload, SECONDS, CONNECTIONS, process.pid),
            "fixed_rate": hey(f"http://127.0.0.1:{port}/", payload, SECONDS, process.pid),
        }
    finally:
        peers.stop(process)


def bench_sink(work: Path) -> dict:
    port = free_port()
    cmd = [
        str(peers.VENV_BIN / "mlstack"),
        "sink",
        "--store",
        str(work / "store"),
        "--wal-dir",
        str(work / "wal"),
    ]
    process = peers.start(
        cmd + ["--port", str(port)], f"http://127.0.0.1:{port}/healthz", None, work / "sink.log"
    )
    run = uuid.uuid4().hex[:8]
    request_body = json.dumps(body("v1", 1))[1:-1]
    lua = f"""
counter = 0
request = function()
  counter = counter + 1
  local kind = (counter % 2 == 0) and "response" or "request"
  local body = (kind == "request") and '{request_body}' or '{{"predictions":[0],"model_version":"1"}}'
  wrk.headers["ce-id"] = "{run}-" .. math.floor((counter + 1) / 2)
  wrk.headers["ce-type"] = "org.kubeflow.serving.inference." .. kind
  wrk.headers["ce-inferenceservicename"] = "loans"
  wrk.headers["ce-namespace"] = "bench"
  wrk.headers["ce-component"] = "predictor"
  return wrk.format("POST", "/", nil, body)
end
"""
    url = f"http://127.0.0.1:{port}/"
    try:
        print("  sink ingest ...", flush=True)
        # the KServe logger posts events concurrently; throughput = in-flight events / fsync latency
        return {
            "ingest_16_connections": wrk(url, "{}", SECONDS, 16, process.pid, lua),
            "ingest": wrk(
                url, "{}", SECONDS, SINK_CONNECTIONS, process.pid, lua.replace(f'"{run}-"', f'"{run}b-"')
            ),
        }
    finally:
        peers.stop(process)


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": QUICK,
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()}",
        "pinning": {
            "server": SERVER_PIN,
            "load_generator": "the other core" if SERVER_PIN else "none (1 core)",
        },
        "seconds_per_measurement": SECONDS,
        "connections": CONNECTIONS,
        "fixed_rate": FIXED_RATE,
        "batch_rows": BATCH_ROWS,
        "mlserver_max_batch_time_s": peers.MLSERVER_MAX_BATCH_TIME,
        "load_avg_start": load_average(),
        "subset": {"models": list(MODELS), "servers": sorted(SERVERS)}
        if SERVERS or MODELS != ALL_MODELS
        else None,
        "results": {},
    }
    suffix = ".quick" if QUICK else ""
    try:
        for label in MODELS:
            model_dir = work / label
            entry = report["results"].setdefault(label, {})
            try:
                entry["compiled"] = train_bench_model(model_dir, label)
                entry["engine_latency"] = engine_latency(model_dir)
                if not SERVERS or "ceiling" in SERVERS:
                    entry["ceiling"] = extra.ceiling(model_dir, work, body("v1", 1), SECONDS, CONNECTIONS)
                entry["servers"] = bench_model(label, model_dir, work)
            except Exception as exc:  # record, keep going
                entry["error"] = f"{type(exc).__name__}: {exc}"
        if not SERVERS or "uvicorn-floor" in SERVERS:
            report["results"]["uvicorn-floor"] = bench_floor(work)
        if not SERVERS or "sink" in SERVERS:
            report["results"]["sink"] = bench_sink(work)
        first = work / MODELS[0]
        if (not SERVERS or "startup" in SERVERS) and first.exists():
            report["results"]["startup"] = extra.startup(first, work)
        if (not SERVERS or "chunked" in SERVERS) and first.exists():
            report["results"]["chunked_body"] = extra.chunked_body(first, work)
        report["load_avg_end"] = load_average()
    finally:
        (RESULTS / f"serving{suffix}.json").write_text(json.dumps(report, indent=2))
        (RESULTS / f"serving{suffix}.md").write_text(write_markdown(report))
        shutil.rmtree(work, ignore_errors=True)
    print((RESULTS / f"serving{suffix}.md").read_text())


if __name__ == "__main__":
    main()
