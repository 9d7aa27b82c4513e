"""Every refusal the predictor and the sink send has one JSON shape: ``{"error", "field", "rule"}``."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from mlstack.serving.http_errors import error_response, refusal
from mlstack.serving.protocol import RequestError
from mlstack.serving.request_guard import RequestGuardMiddleware
from mlstack.serving.sink.events import EventError

pytestmark = pytest.mark.unit


def test_the_shape_is_error_field_rule_and_details_only_when_there_are_some():
    assert refusal("income", "out_of_range", "income -1 is below 0") == {
        "error": "income -1 is below 0",
        "field": "income",
        "rule": "out_of_range",
    }
    rows = [{"row": 3, "field": "income", "rule": "out_of_range", "message": "below 0"}]
    assert refusal("income", "out_of_range", "2 rows", rows)["details"] == rows
    assert "details" not in refusal("body", "invalid_json", "not JSON", [])


def test_predictor_sink_guard_and_read_timeout_answer_in_that_shape():
    expected = refusal("body", "body_too_large", "request body over 10 bytes")
    assert RequestError("body", "body_too_large", "request body over 10 bytes").to_dict() == expected
    assert EventError("body", "body_too_large", "request body over 10 bytes", 413).to_dict() == expected
    assert orjson.loads(error_response(413, "body", "body_too_large", "request body over 10 bytes").body) == (
        expected
    )

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-length", b"11")]  # refused on the declared length, before any read
    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": headers}
    asyncio.run(RequestGuardMiddleware(app=None, max_body_bytes=10)(scope, None, send))
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"]) == expected

    from mlstack.serving.timeouts import _timeout_response

    head, _, body = _timeout_response(2).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert set(orjson.loads(body)) == {"error", "field", "rule"}


def test_the_kserve_server_handlers_answer_in_that_shape():
    from kserve.errors import InvalidInput

    from mlstack.serving.predictor import _invalid_input_handler

    answer = asyncio.run(_invalid_input_handler(None, InvalidInput("bad tensor")))
    assert answer.status_code == 400
    assert orjson.loads(answer.body) == refusal("body", "invalid_input", "bad tensor")


def test_no_module_writes_the_refusal_body_by_hand():
    """A dict literal with both ``error`` and ``rule`` keys anywhere but ``refusal`` is a second copy."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    copies = []
    for package in ("serving", "monitoring", "components", "pipelines", "mlstack"):
        for path in sorted((root / package).rglob("*.py")):  # "**" does not enter mlstack/'s symlinks
            tree = ast.parse(path.read_text(), str(path))
            owners = {  # each node -> the innermost function holding it (named, not numbered)
                id(inner): outer.name
                for outer in ast.walk(tree)
                if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef))
                for inner in ast.walk(outer)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Dict):
                    keys = {key.value for key in node.keys if isinstance(key, ast.Constant)}
                    if {"error", "rule"} <= keys:
                        copies.append(f"{path.relative_to(root)}:{owners.get(id(node), '<module>')}")
    assert copies == ["serving/http_errors.py:refusal"], copies
