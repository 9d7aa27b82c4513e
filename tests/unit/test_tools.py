"""A missing external tool skips locally and fails under MLSTACK_REQUIRE_TOOLS=1."""

from __future__ import annotations

import pytest

from tests import tools


@pytest.fixture
def missing_tool(monkeypatch):
    monkeypatch.setitem(
        tools.TOOLS, "nosuchtool", tools.Tool("nosuchtool", "/nonexistent/nosuchtool", "nothing")
    )
    monkeypatch.setenv("PATH", "/nonexistent")
    return "nosuchtool"


def test_missing_tool_skips_with_the_reason_locally(missing_tool, monkeypatch):
    monkeypatch.delenv("MLSTACK_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nosuchtool is not installed"):
        tools.require(missing_tool)


def test_missing_tool_fails_when_tools_are_required(missing_tool, monkeypatch):
    monkeypatch.setenv("MLSTACK_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="MLSTACK_REQUIRE_TOOLS=1"):
        tools.require(missing_tool)


def test_every_declared_tool_is_found_when_required():
    """On CI (MLSTACK_REQUIRE_TOOLS=1) every tool the tests use must be installed."""
    if not tools.required_strictly():
        pytest.skip("MLSTACK_REQUIRE_TOOLS is not 1: missing tools only skip their tests here")
    missing = [name for name in tools.TOOLS if tools.find(name) is None]
    assert not missing, f"not installed: {missing}"
