"""ASGI guards for the stock KServe server: 413 over a body limit, 405 for a wrong method on predict.

The lean server checks the body size itself (``serving/app.py``); the stock ``kserve.ModelServer``
reads any body whole (a 629 MB body took its RSS to 1.1 GB), so ``serving/predictor.run_kserve``
wraps its app in this, with the same ``serving.max_body_bytes``. Its ``/v1/models/{name}`` GET
route also swallows ``GET /v1/models/NAME:predict`` (404 "model does not exist"); both servers
answer 405 there.
"""

from __future__ import annotations

import orjson


class BodyTooLarge(Exception):
    """The streamed body passed the limit."""


PREDICT_SUFFIXES = (":predict", "/infer")


def _response(status: int, error: str, field: str, rule: str) -> tuple[dict, dict]:
    body = orjson.dumps({"error": error, "field": field, "rule": rule})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestGuardMiddleware:
    """405 for a non-POST on a predict path; 413 for a body over ``max_body_bytes`` before it is buffered."""

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.endswith(PREDICT_SUFFIXES) and scope.get("method") != "POST":
            start, body = _response(
                405, f"{scope.get('method')} is not allowed on {path}", "method", "method_not_allowed"
            )
            await send(start)
            return await send(body)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        start, body = _response(413, f"request body over {self.limit} bytes", "body", "body_too_large")
        await send(start)
        await send(body)
