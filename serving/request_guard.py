"""The front door of the stock KServe server: the lean server's checks, before KServe sees a request.

- 413 over ``serving.max_body_bytes``, counted while the body streams in: the stock server reads any
  body whole (a 629 MB body took its RSS to 1.1 GB).
- 405 for a non-POST on a predict path: its ``/v1/models/{name}`` GET route swallows
  ``GET /v1/models/NAME:predict`` (404 "model does not exist"); both servers answer 405 there.
- The served model's inference bodies go through ``mlstack.serving.decoding.parse_request``, the
  function the lean server calls, so a malformed body gets the same 400 from both servers. Left to
  KServe (kserve==0.21.0), ``Inference-Header-Content-Length: abc`` was ``int("abc")`` in
  ``dataplane.decode_inference_request`` and an FP64 input whose ``binary_data_size`` is not a
  multiple of 8 a ``np.frombuffer`` ValueError in ``InferInput.as_numpy``: both a 500, which a
  canary counts as a server error. Valid bodies are replayed to KServe unchanged.
- ``/v2/models/NAME/versions/V/infer`` is answered like ``/v2/models/NAME/infer`` (the lean server
  does; KServe's handler raises NotImplementedError for a version).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.serving import binary
from mlstack.serving.asgi import ClientGone, header, read_body, respond, too_large
from mlstack.serving.protocol import ProtocolName, RequestError

PREDICT_SUFFIXES = (":predict", "/infer")
JSON = [(b"content-type", b"application/json")]
# (protocol, raw body, Inference-Header-Content-Length) -> None, or RequestError
Check = Callable[[ProtocolName, bytes, str | None], None]


class BodyTooLarge(Exception):
    """The streamed body passed the limit."""


class RequestGuardMiddleware:
    """405 for a non-POST on a predict path; 413 over ``max_body_bytes``; the shared 400s for ``model_name``."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, model_name: str | None = None, check: Check | None = None
    ):
        self.app = app
        self.limit = max_body_bytes
        self.check = check
        self.paths: dict[str, ProtocolName] = {}
        self.versioned: re.Pattern[str] | None = None
        if model_name is not None:
            self.paths = {f"/v1/models/{model_name}:predict": "v1", f"/v2/models/{model_name}/infer": "v2"}
            self.versioned = re.compile(rf"^/v2/models/{re.escape(model_name)}/versions/[^/]+/infer$")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.endswith(PREDICT_SUFFIXES) and scope.get("method") != "POST":
            error = RequestError(
                "method", "method_not_allowed", f"{scope.get('method')} is not allowed on {path}"
            )
            return await respond(send, 405, orjson.dumps(error.to_dict()), JSON)
        if self.versioned is not None and self.versioned.match(path):
            path = path[: path.index("/versions/")] + "/infer"
            scope = dict(scope, path=path, raw_path=path.encode())
        protocol = self.paths.get(path)
        if protocol is not None and scope.get("method") == "POST":
            return await self._checked(protocol, scope, receive, send)
        return await self._limited(scope, receive, send)

    async def _checked(self, protocol: ProtocolName, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (under the limit), judge it with the shared parser, replay it to KServe."""
        try:
            raw = await read_body(scope, receive, self.limit)
            if self.check is not None:
                inference_header = header(scope, binary.HEADER.encode()) if protocol == "v2" else None
                self.check(protocol, raw, inference_header)
        except ClientGone:
            return
        except RequestError as error:
            status = 413 if error.rule == "body_too_large" else 400
            return await respond(send, status, orjson.dumps(error.to_dict()), JSON)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await respond(send, 413, orjson.dumps(too_large(self.limit).to_dict()), JSON)
