"""The servers the serving bench compares, each started pinned to the server core on a free port.

Ours: the lean app and the stock ``kserve.ModelServer`` (``mlstack serve --server kserve``), on the
compiled engine (default) and on scikit-learn, with and without adaptive batching. Peers: MLServer
1.7.1 (stock, and with adaptive batching), ``mlflow models serve``. Every server gets the same
thread caps and the same registered model directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.loadgen import SERVER_PIN
from mlstack.core.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
MLSERVER_BIN = ROOT / "bench" / ".venvs" / "mlserver" / "bin"
# one-row requests gain nothing from OpenMP/BLAS pools; every server gets the same caps
SAME_FOR_ALL = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# MLServer's adaptive batching (docs/user-guide/adaptive-batching.md at tag 1.7.1): max_batch_size
# requests per batch, max_batch_time seconds of waiting; the docs say to find both by experiment
# and ship no default. A batch can never hold more requests than the load generator keeps in
# flight, so max_batch_size = the bench's connection count; max_batch_time = 5 ms (their own
# benchmarking/testserver iris model uses 0.3 s, which at 16 connections would cap it at ~53 req/s).
MLSERVER_MAX_BATCH_TIME = float(os.environ.get("BENCH_MLSERVER_MAX_BATCH_TIME", "0.005"))


@dataclass
class Running:
    process: subprocess.Popen
    url: str  # the inference endpoint
    body_format: str  # v1 | mlserver | mlflow
    notes: dict = field(default_factory=dict)


def start(cmd: list[str], health: str, env: dict | None, log: Path, timeout: float = 300) -> subprocess.Popen:
    process = subprocess.Popen(
        [*SERVER_PIN, *cmd],
        cwd=ROOT,
        env=os.environ | SAME_FOR_ALL | {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"} | (env or {}),
        stdout=open(log, "wb"),
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
    raise TimeoutError(f"{health} did not come up; see {log}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def mlstack(model_dir: Path, work: Path, label: str, server: str, engine: str, batching: bool) -> Running:
    port = free_port()
    env = {
        "MLSTACK_MODEL_VERSION": "1",
        "MLSTACK_HOME": str(work / "home"),
        "MLSTACK_SERVING__ENGINE": engine,
        "MLSTACK_SERVING__BATCHING": "true" if batching else "false",
    }
    cmd = [str(VENV_BIN / "mlstack"), "serve", "--model", str(model_dir), "--name", "loans"]
    cmd += ["--port", str(port), "--server", server]
    process = start(cmd, f"http://127.0.0.1:{port}/v2/health/ready", env, work / f"{label}.log")
    engine_said = httpx.get(f"http://127.0.0.1:{port}/v2/models/loans").json().get("parameters", {})
    return Running(process, f"http://127.0.0.1:{port}/v1/models/loans:predict", "v1", engine_said)


def mlserver(model_dir: Path, work: Path, label: str, batching: bool, connections: int) -> Running:
    import joblib
    import mlflow.sklearn

    folder = work / label
    folder.mkdir(parents=True)
    joblib.dump(mlflow.sklearn.load_model(str(model_dir)), folder / "model.joblib")
    model_settings: dict = {
        "name": "loans",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    if batching:
        model_settings |= {"max_batch_size": connections, "max_batch_time": MLSERVER_MAX_BATCH_TIME}
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
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
    notes = {k: model_settings[k] for k in ("max_batch_size", "max_batch_time") if k in model_settings}
    return Running(process, f"http://127.0.0.1:{port}/v2/models/loans/infer", "mlserver", notes)


def mlflow_serve(model_dir: Path, work: Path, label: str) -> Running:
    port = free_port()
    cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "-p", str(port)]
    cmd += ["-h", "127.0.0.1", "--env-manager", "local", "-w", "1"]
    process = start(cmd, f"http://127.0.0.1:{port}/health", None, work / f"{label}.log")
    return Running(process, f"http://127.0.0.1:{port}/invocations", "mlflow")


def mlserver_installed() -> bool:
    return (MLSERVER_BIN / "mlserver").exists()
