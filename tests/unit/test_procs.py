"""The shared process helper: a free port is free, stop() is graceful first and forceful after."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from mlstack.core.procs import free_port, stop, wait_for_http


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_stop_terminates_gracefully():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop(process, timeout=10) is True
    assert process.returncode == -15


def test_stop_kills_what_ignores_sigterm():
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    assert stop(process, timeout=0.5) is False
    assert process.returncode == -9


def test_wait_for_http_reports_a_dead_server():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=5, process=process)
