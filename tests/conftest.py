"""Shared test plumbing: markers by folder, free loopback ports, waiting for servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# the one free-port / wait / stop helper, shared with the demo and the benchmarks
from mlstack.core.procs import free_port, stop, wait_for_http

__all__ = ["ROOT", "free_port", "stop", "wait_for_http"]

ROOT = Path(__file__).resolve().parent.parent

# one line per area; each module holds that area's server fixtures
pytest_plugins: list[str] = [
    "tests.fixtures.mlflow_server",
    "tests.fixtures.mlflow_auth",
    "tests.fixtures.serving",
    "tests.fixtures.monitoring",
    "tests.fixtures.canary",
    "tests.fixtures.knative_metrics",
    "tests.fixtures.cluster",
    "tests.fixtures.batch",
    "tests.fixtures.control_plane",
    "tests.fixtures.platform_apply",
    "tests.fixtures.kafka",
    "tests.fixtures.reconcilers",
    "tests.fixtures.rollouts",
]


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "e2e"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))


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
