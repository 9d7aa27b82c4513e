"""Hostile clients against every server we start: half-sent requests time out, a huge chunked body
is refused without being held in memory.

Before ``serving/timeouts.py`` a connection that sent half a request stayed open for ever (1,100 of
them after 70 s); before ``serving/asgi.read_body`` the lean predictor read a whole chunked body
(no Content-Length to refuse up front) before its size check: 600 MiB took RSS 412 -> 1,564 MiB.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import psutil
import pytest

from tests.fixtures.serving import MODEL_NAME, start_predictor, start_sink

CONNECTIONS = 240  # per server: a third silent, a third half a header block, a third half a body


def _half_sent(port: int, path: str) -> list[socket.socket]:
    sockets = []
    for index in range(CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if index % 3 == 1:
            sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-ty".encode())
        elif index % 3 == 2:
            sock.sendall(f'POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{{"inst'.encode())
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket, deadline: float) -> tuple[bool, bytes]:
    """(whether the server closed the connection before the deadline, what it said first)."""
    said = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False, said
        except ConnectionResetError:
            return True, said
        if not chunk:
            return True, said
        said += chunk
    return False, said


def _check_half_sent_connections_are_closed(port: int, path: str, health: str) -> None:
    sockets = _half_sent(port, path)
    try:
        deadline = time.monotonic() + 30  # the timeout is 1 s; a loaded CI box gets slack
        outcomes = [_closed_by_server(sock, deadline) for sock in sockets]
        still_open = sum(1 for closed, _ in outcomes if not closed)
        assert still_open == 0, f"{still_open} of {len(sockets)} half-sent connections still open after 30 s"
        answered = [said for _, said in outcomes if said]
        assert answered and all(said.startswith(b"HTTP/1.1 408 ") for said in answered), answered[:3]
        assert b'"rule":"read_timeout"' in answered[0]
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(health, timeout=30).status_code == 200


TIMEOUT_ENV = {"MLSTACK_SERVING__READ_TIMEOUT_SECONDS": "1", "MLSTACK_SINK__READ_TIMEOUT_SECONDS": "1"}


@pytest.mark.parametrize("kind", ["lean", "kserve"])
def test_predictor_closes_half_sent_requests(model_dir, tmp_path, kind):
    server = start_predictor(model_dir, kind, tmp_path, env_extra=TIMEOUT_ENV)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        _check_half_sent_connections_are_closed(
            port, f"/v1/models/{MODEL_NAME}:predict", f"{server.url}/v2/health/ready"
        )
    finally:
        server.stop()


def test_sink_closes_half_sent_requests(tmp_path):
    server = start_sink(
        str(tmp_path / "store"), tmp_path / "wal", tmp_path / "sink.log", env_extra=TIMEOUT_ENV
    )
    try:
        port = int(server.url.rsplit(":", 1)[1])
        _check_half_sent_connections_are_closed(port, "/", f"{server.url}/healthz")
    finally:
        server.stop()


def _rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def _settled_rss_mib(pid: int) -> float:
    """RSS once it stops moving: the lean server imports its slow path (pandas) after it is ready."""
    last = _rss_mib(pid)
    for _ in range(60):
        time.sleep(2)
        now = _rss_mib(pid)
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


def test_a_huge_chunked_body_is_refused_without_being_buffered(model_dir, tmp_path):
    limit = 1024 * 1024
    server = start_predictor(
        model_dir, "lean", tmp_path, env_extra={"MLSTACK_SERVING__MAX_BODY_BYTES": str(limit)}
    )
    try:
        pid = server.process.pid
        before = _settled_rss_mib(pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:  # the peak during the upload (VmHWM would hold the start-up peak)
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mib(pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        chunk = b"9" * (1024 * 1024)

        def body():  # no Content-Length: httpx sends Transfer-Encoding: chunked
            yield b'{"instances": [['
            for _ in range(96):
                yield chunk
            yield b"]]}"

        answer = httpx.post(f"{server.url}/v1/models/{MODEL_NAME}:predict", content=body(), timeout=120)
        done.set()
        sampler.join()
        assert answer.status_code == 413 and answer.json()["rule"] == "body_too_large"
        grown = peak[0] - before
        assert grown < 16, f"peak RSS grew {grown:.0f} MiB for a 96 MiB body over a 1 MiB limit"
        assert psutil.Process(pid).is_running()
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    finally:
        server.stop()
