"""The serving bench's issue-24/27 cases: start-up to ready, the "model call only" ceiling, v2 JSON
vs binary at 32 rows, one-row v2, and a 600 MiB chunked body against the predictor's body limit.

Each server is started pinned to the server core (``bench/serving_peers.start``); load comes from
wrk on the other core (``bench/loadgen.wrk``).
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from bench import serving_peers as peers
from bench.loadgen import SERVER_PIN, wrk
from mlstack.core.procs import free_port
from mlstack.core.settings import ServingConfig

ROOT = Path(__file__).resolve().parent.parent
HEADER = "inference-header-content-length"
CHUNKED_MIB = 600


def _time_to_ready(cmd: list[str], health: str, env: dict) -> dict:
    """Wall seconds from spawn to the first 200 on ``health``, and the CPU seconds spent by then."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*SERVER_PIN, *cmd],
        cwd=ROOT,
        env=os.environ | peers.SAME_FOR_ALL | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            if process.poll() is not None:
                return {"error": f"exited with {process.returncode}"}
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        wall = time.perf_counter() - started
        times = psutil.Process(process.pid).cpu_times()
        return {"ready_s": round(wall, 3), "cpu_s": round(times.user + times.system, 3)}
    finally:
        peers.stop(process)


def _summary(runs: list[dict]) -> dict:
    good = [r for r in runs if "ready_s" in r]
    if not good:
        return {"error": runs[0].get("error", "no run")}
    return {
        "ready_s_min": min(r["ready_s"] for r in good),
        "ready_s_median": statistics.median(r["ready_s"] for r in good),
        "cpu_s_median": statistics.median(r["cpu_s"] for r in good),
        "runs": len(good),
    }


def startup(model_dir: Path, work: Path, repeats: int = 3) -> dict:
    """`mlstack serve` (lean, compiled engine), `mlstack sink`, and the drift job's imports."""
    env = {"MLSTACK_MODEL_VERSION": "1", "MLSTACK_HOME": str(work / "home-startup")}
    serve, sink = [], []
    for _ in range(repeats):
        port = free_port()
        cmd = [str(peers.VENV_BIN / "mlstack"), "serve", "--model", str(model_dir), "--name", "loans"]
        serve.append(
            _time_to_ready([*cmd, "--port", str(port)], f"http://127.0.0.1:{port}/v2/health/ready", env)
        )
        port = free_port()
        cmd = [str(peers.VENV_BIN / "mlstack"), "sink", "--store", str(work / "startup-store")]
        cmd += ["--wal-dir", str(work / f"startup-wal-{port}"), "--port", str(port)]
        sink.append(_time_to_ready(cmd, f"http://127.0.0.1:{port}/healthz", env))
    # `mlstack drift` is a job, not a server: process start to the moment its modules are imported,
    # where `mlstack drift` begins its work (mlstack/cli/drift.py imports these, then reads data)
    drift = []
    code = "import mlstack.cli.main, mlstack.monitoring.drift.job, mlstack.monitoring.drift.inputs"
    for _ in range(repeats):
        started = time.perf_counter()
        out = subprocess.run(
            [*SERVER_PIN, str(peers.VENV_BIN / "python"), "-c", code], cwd=ROOT, capture_output=True
        )
        if out.returncode != 0:
            drift.append({"error": out.stderr.decode()[-300:]})
            continue
        drift.append({"ready_s": round(time.perf_counter() - started, 3), "cpu_s": float("nan")})
    return {
        "mlstack_serve_lean_onnx": _summary(serve),
        "mlstack_sink": _summary(sink),
        "mlstack_drift_imports": _summary(drift),
    }


def ceiling(model_dir: Path, work: Path, payload: str, seconds: int, connections: int) -> dict:
    """uvicorn + the compiled model call on a fixed row, nothing else: what one-row requests could reach."""
    port = free_port()
    cmd = [str(peers.VENV_BIN / "python"), "-m", "uvicorn", "bench.ceiling_app:app", "--port", str(port)]
    env = {"BENCH_MODEL_DIR": str(model_dir)}
    process = peers.start(
        [*cmd, "--no-access-log", "--log-level", "warning"],
        f"http://127.0.0.1:{port}/health",
        env,
        work / "ceiling.log",
    )
    try:
        return wrk(f"http://127.0.0.1:{port}/", payload, seconds, connections, process.pid)
    finally:
        peers.stop(process)


def binary_body(json_body: str) -> tuple[bytes, int]:
    """The same v2 request in the binary tensor extension: FP64/BYTES tensors after the JSON header."""
    body = json.loads(json_body)
    chunks = []
    for tensor in body["inputs"]:
        data = tensor.pop("data")
        if tensor["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in data)
        else:
            raw = np.asarray(data, dtype="<f8").tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    head = json.dumps(body).encode()
    return head + b"".join(chunks), len(head)


def _lua_bytes(data: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def v2_json_vs_binary(url: str, json_body: str, pid: int, seconds: int, connections: int) -> dict:
    """wrk on the v2 endpoint: the JSON request, then the same rows as binary tensors."""
    raw, length = binary_body(json_body)
    probe = httpx.post(url, content=raw, headers={HEADER: str(length)}, timeout=30)
    if probe.status_code != 200:
        return {"error": f"binary probe answered {probe.status_code}: {probe.text[:200]}"}
    lua = f'wrk.body = {_lua_bytes(raw)}\nwrk.headers["{HEADER}"] = "{length}"\n'
    lua += 'wrk.headers["Content-Type"] = "application/octet-stream"\n'
    return {
        "json": wrk(url, json_body, seconds, connections, pid),
        "binary": wrk(url, "", seconds, connections, pid, lua),
        "json_bytes": len(json_body.encode()),
        "binary_bytes": len(raw),
    }


def _rss_mib(pid: int, field: str) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def _settled_rss(pid: int, timeout: float = 120) -> float:
    """RSS once it stops moving (the background import of the slow path adds ~20 MiB after ready)."""
    deadline = time.monotonic() + timeout
    last = _rss_mib(pid, "VmRSS:")
    while time.monotonic() < deadline:
        time.sleep(2)
        now = _rss_mib(pid, "VmRSS:")
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


def chunked_body(model_dir: Path, work: Path) -> dict:
    """A 600 MiB chunked POST to the lean predictor (default body limit): its peak RSS growth."""
    port = free_port()
    env = {"MLSTACK_MODEL_VERSION": "1", "MLSTACK_HOME": str(work / "home-chunked")}
    cmd = [str(peers.VENV_BIN / "mlstack"), "serve", "--model", str(model_dir), "--name", "loans"]
    process = peers.start(
        [*cmd, "--port", str(port)], f"http://127.0.0.1:{port}/v2/health/ready", env, work / "chunked.log"
    )
    try:
        limit = ServingConfig().max_body_bytes  # the default the predictor runs with
        before = _settled_rss(process.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:  # VmHWM also holds the start-up peak; sample the upload itself
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mib(process.pid, "VmRSS:"))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        chunk = b"1," * (512 * 1024)

        def body():
            yield b'{"instances": [['
            for _ in range(CHUNKED_MIB):
                yield chunk
            yield b"1]]}"

        started = time.perf_counter()
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/loans:predict", content=body(), timeout=600)
        done.set()
        sampler.join()
        grown = peak[0] - before
        return {
            "body_mib": CHUNKED_MIB,
            "status": answer.status_code,
            "seconds": round(time.perf_counter() - started, 2),
            "body_limit_mib": limit / 2**20,
            "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(peak[0], 1),
            "peak_growth_mib": round(grown, 1),
            "alive_after": process.poll() is None,
        }
    finally:
        peers.stop(process)


if __name__ == "__main__":  # a quick look: python bench/serving_extra.py MODEL_DIR WORK
    print(json.dumps(startup(Path(sys.argv[1]), Path(sys.argv[2]), 1), indent=2))
