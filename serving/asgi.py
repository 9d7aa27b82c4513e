"""Raw ASGI helpers for the lean predictor's hot path: read a body under a limit, answer bytes.

Starlette's ``Request.body()`` reads the whole body before anyone can look at its size, so a
600 MiB chunked upload (no Content-Length to refuse up front) was held in memory before the 413.
``read_body`` counts as the chunks arrive and stops at the limit; uvicorn discards the rest of the
upload once the answer is sent (``uvicorn/protocols/http/httptools_impl.py`` ``on_body`` returns
when ``response_complete``), so memory stays at most one limit per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlstack.serving.protocol import RequestError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before its body was complete: nobody to answer."""


def too_large(limit: int) -> RequestError:
    return RequestError("body", "body_too_large", f"request body over {limit} bytes")


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (``name`` lower-case, as ASGI gives them), or None."""
    key: bytes
    value: bytes
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; RequestError ``body_too_large`` as soon as it passes ``limit`` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """One complete answer: status, ``headers`` plus Content-Length, ``body``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
