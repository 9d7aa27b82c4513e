"""JSON answers and error handlers shared by the lean predictor app and the payload sink.

Every refusal has one shape: ``{"error": <sentence>, "field": <where>, "rule": <which rule>}``.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def error_response(
    status: int, field: str, rule: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(status, {"error": message, "field": field, "rule": rule}, headers)


def error_handlers(log: logging.Logger) -> dict:
    """Starlette exception handlers: 404, 405 and any unexpected exception, all in the JSON shape."""

    async def not_found(request: Request, _exc) -> Response:
        return error_response(404, "path", "not_found", f"no endpoint {request.method} {request.url.path}")

    async def not_allowed(request: Request, _exc) -> Response:
        return error_response(
            405, "method", "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
        )

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "server", "internal_error", f"{type(exc).__name__}: {exc}")

    return {404: not_found, 405: not_allowed, Exception: crashed}
