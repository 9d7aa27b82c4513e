"""Load generators and server CPU accounting for the serving bench.

The server runs pinned to one core and wrk/hey to another (``taskset``), so a server's req/s is
its throughput per core; on top, the CPU seconds the server's processes spent (user + system,
children included, from psutil) per 1,000 requests, which a noisy neighbour moves far less.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile

import psutil

FIXED_RATE = 200


def cores() -> tuple[list[str], list[str]]:
    """(taskset prefix for servers, taskset prefix for load generators); empty when < 2 cores."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return [], []
    return ["taskset", "-c", str(available[0])], ["taskset", "-c", str(available[1])]


SERVER_PIN, LOAD_PIN = cores()


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants, so far."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, body: str, seconds: int, connections: int, pid: int | None, lua_extra: str = "") -> dict:
    """Throughput at saturation: wrk, 1 thread, ``connections`` connections; server CPU per 1k requests."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n{lua_extra}"
        )
    load = load_average()
    cpu_before = cpu_seconds(pid) if pid else None
    out = subprocess.run(
        [*LOAD_PIN, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before if pid else None
    os.unlink(script.name)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "p50_ms": _ms(lat["50"]) if "50" in lat else None,
        "p99_ms": _ms(lat["99"]) if "99" in lat else None,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "load_avg_before": load,
        "connections": connections,
    }
    if cpu is not None and requests:
        result["server_cpu_s_per_1000"] = round(cpu / requests * 1000, 4)
        result["requests_per_server_cpu_s"] = round(requests / cpu, 1) if cpu > 0 else None
    return result


def hey(url: str, body: str, seconds: int, pid: int | None) -> dict:
    """Latency at a fixed FIXED_RATE req/s (4 workers x rate/4)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as payload:
        payload.write(body)
    load = load_average()
    cpu_before = cpu_seconds(pid) if pid else None
    out = subprocess.run(
        [
            *LOAD_PIN,
            "hey",
            "-z",
            f"{seconds}s",
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
    cpu = cpu_seconds(pid) - cpu_before if pid else None
    os.unlink(payload.name)
    dist = {k: float(v) * 1000 for k, v in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    achieved = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    result = {
        "achieved_rps": achieved,
        "p50_ms": dist.get("50"),
        "p95_ms": dist.get("95"),
        "p99_ms": dist.get("99"),
        "non_200": sum(int(n) for c, n in codes.items() if c != "200"),
        "load_avg_before": load,
    }
    if cpu is not None and achieved:
        result["server_cpu_s_per_1000"] = round(cpu / (achieved * seconds) * 1000, 4)
    return result
