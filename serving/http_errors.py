"""JSON answers and error handlers shared by the predictor (both servers) and the payload sink.

Every refusal has one shape, built by ``refusal``: ``{"error": <sentence>, "field": <where>,
"rule": <which rule>}``, plus ``details`` (one entry a row) where a contract check found several.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"

# A Starlette HTTP exception handler. The exception is Any: Starlette passes one, the predictor calls
# the 405 handler itself with None (app.py), and the 500 handler reads it.
Handler = Callable[[Request, Any], Awaitable[Response]]


def refusal(
    field: str, rule: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON body of a refusal: what is wrong (``error``), where (``field``), which rule (``rule``)."""
    body: dict[str, Any] = {"error": message, "field": field, "rule": rule}
    if details:
        body["details"] = details
    return body


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def error_response(
    status: int, field: str, rule: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(status, refusal(field, rule, message), headers)


def error_handlers(log: logging.Logger) -> dict[int | type[Exception], Handler]:
    """Starlette exception handlers: 404, 405 and any unexpected exception, all in the JSON shape."""

    async def not_found(request: Request, _exc: Exception | None) -> Response:
        return error_response(404, "path", "not_found", f"no endpoint {request.method} {request.url.path}")

    async def not_allowed(request: Request, _exc: Exception | None) -> Response:
        return error_response(
            405, "method", "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
        )

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "server", "internal_error", f"{type(exc).__name__}: {exc}")

    return {404: not_found, 405: not_allowed, Exception: crashed}
