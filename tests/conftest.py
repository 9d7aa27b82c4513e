"""Shared test plumbing: markers by folder, free loopback ports, waiting for servers."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# one line per area; each module holds that area's server fixtures
pytest_plugins: list[str] = [
    "tests.fixtures.mlflow_server",
    "tests.fixtures.serving",
    "tests.fixtures.monitoring",
    "tests.fixtures.canary",
    "tests.fixtures.knative_metrics",
    "tests.fixtures.cluster",
    "tests.fixtures.batch",
    "tests.fixtures.control_plane",
    "tests.fixtures.platform_apply",
]


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "e2e"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process=None) -> None:
    """Poll ``url`` until it answers below 500; fail early if ``process`` died."""
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


@pytest.fixture
def mlstack_home(tmp_path, monkeypatch) -> Path:
    """An empty $MLSTACK_HOME for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MLSTACK_HOME", str(home))
    monkeypatch.delenv("MLSTACK_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLSTACK_CONFIG", raising=False)
    return home


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    return Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
