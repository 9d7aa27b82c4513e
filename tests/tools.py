"""The external programs the tests start, named in one place.

``require("promtool")`` returns the program's path. When it is missing the test is skipped with the
reason and the install command, so a laptop without Chromium still runs the rest; with
``MLSTACK_REQUIRE_TOOLS=1`` (set by ``.ci/run``) a missing program fails the test instead, so CI can
never go green by skipping what it was meant to run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Tool:
    name: str
    path: str  # where the Debian package installs it; PATH is searched first
    install: str


TOOLS = {
    tool.name: tool
    for tool in (
        # the one built at the pinned version (tests/fixtures/kube_tools.py); a kubectl on PATH is not used
        Tool(
            "kubectl",
            "bin/kubectl-<KUBERNETES_VERSION>",
            "`make test-tools` (builds it from tools/, needs Go)",
        ),
        Tool("prometheus", "/usr/bin/prometheus", "`make system-deps` (Debian package prometheus)"),
        Tool("promtool", "/usr/bin/promtool", "`make system-deps` (Debian package prometheus)"),
        Tool(
            "prometheus-pushgateway",
            "/usr/bin/prometheus-pushgateway",
            "`make system-deps` (Debian package prometheus-pushgateway)",
        ),
        Tool("chromium", "/usr/bin/chromium", "`make system-deps` (Debian package chromium)"),
    )
}


def required_strictly() -> bool:
    """True when a missing tool must fail the test (CI), not skip it."""
    return os.environ.get("MLSTACK_REQUIRE_TOOLS", "") == "1"


def find(name: str) -> str | None:
    """The path of tool ``name`` (PATH first, then its Debian location), or None."""
    tool = TOOLS[name]
    if name == "kubectl":
        from tests.fixtures.kube_tools import tool_path

        built = tool_path("kubectl")
        return str(built) if built.is_file() else None
    found = shutil.which(tool.name)
    if found:
        return found
    return tool.path if os.access(tool.path, os.X_OK) else None


def require(name: str) -> str:
    """The path of tool ``name``; skip the test (fail it when MLSTACK_REQUIRE_TOOLS=1) when missing."""
    path = find(name)
    if path is None:
        reason = f"{name} is not installed: install it with {TOOLS[name].install}"
        if required_strictly():
            pytest.fail(f"{reason} (MLSTACK_REQUIRE_TOOLS=1)")
        pytest.skip(reason)
    return path
