"""A read timeout for every uvicorn server this project starts (predictor, stock KServe path, sink).

uvicorn times out only an idle keep-alive connection (``timeout_keep_alive``, armed when a response
completes: uvicorn==0.54.0 ``protocols/http/httptools_impl.py`` ``on_response_complete``). A client
that connects and sends half a request line, half its headers or half its body is never timed out:
1,100 such connections were all still open after 70 s, each holding a socket and a buffer.

``protocol(read_timeout)`` is uvicorn's own httptools protocol with one timer more: a request must
arrive whole within ``read_timeout`` seconds of the connection opening, or of its first byte on a
kept-alive connection. When it does not, the server answers 408 with the JSON error body (unless an
answer already started, e.g. a 413 while the rest of a large upload was still arriving) and closes
the connection. Pass the class as ``uvicorn.Config(http=...)``.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlstack.serving.http_errors import refusal


def _timeout_response(seconds: float) -> bytes:
    message = f"the request did not arrive whole within {seconds:g} s (read_timeout_seconds)"
    body = orjson.dumps(refusal("request", "read_timeout", message))
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class ReadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes a connection whose request is not whole in time."""

    read_timeout: float = 30.0
    _read_timer: asyncio.TimerHandle | None = None

    # uvicorn's own signature: HttpToolsProtocol narrows BaseProtocol's BaseTransport, ignoring the same
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_timeout_response(self.read_timeout))
        self.transport.close()


def protocol(read_timeout: float) -> type[ReadTimeoutProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this read timeout."""
    return type("ReadTimeoutProtocol", (ReadTimeoutProtocol,), {"read_timeout": read_timeout})
