"""Local processes on loopback: pick a free port, wait until a server answers, stop a process.

The one copy used by the demo, the benchmarks and the test fixtures, so a server is started, awaited
and stopped the same way everywhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``url`` until it answers below 500.

    Raises:
        RuntimeError: ``process`` exited before the server answered.
        TimeoutError: no answer below 500 within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def stop(process: subprocess.Popen[Any], timeout: float = 15.0, group: bool = False) -> bool:
    """SIGTERM ``process`` (its whole process group when ``group``), SIGKILL it after ``timeout``.

    Returns True when it exited on SIGTERM within ``timeout`` (a graceful stop), False when it had to
    be killed. A process that already exited is reaped and counts as graceful.
    """
    if process.poll() is not None:
        return True
    _signal(process, signal.SIGTERM, group)
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL, group)
        process.wait(timeout=10)
        return False


def _signal(process: subprocess.Popen[Any], signum: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:  # exited between poll() and the signal
        pass
