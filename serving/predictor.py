"""The predictor as a ``kserve.Model``, served by the stock ``kserve.ModelServer``.

It loads an mlstack model (MLflow sklearn flavor with contract metadata) from a directory (KServe
mounts it at ``/mnt/models``) or a ``models:/NAME@ALIAS`` URI, and answers v1 ``:predict`` and v2
``/infer`` through the shared parsing (``mlstack.serving.protocol``) and scoring (``mlstack.serving.scoring``).
Client mistakes raise ``ContractRejection`` (a ``kserve.errors.InvalidInput``), answered 400 with
a JSON body naming the field and the rule by a handler registered here.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import kserve
import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from mlstack.core.model import LoadedModel, load
from mlstack.serving import binary, metrics
from mlstack.serving.decoding import parse_request
from mlstack.serving.http_errors import refusal
from mlstack.serving.protocol import (
    MODEL_ENGINE_HEADER,
    MODEL_NAME_HEADER,
    MODEL_VERSION_HEADER,
    ProtocolName,
    RequestError,
    parse_v1,
    parse_v2,
    v1_response,
    v2_response,
)
from mlstack.serving.scoring import Scorer, fast_sklearn

log = logging.getLogger(__name__)

# kserve==0.21.0 ships no py.typed, so mypy sees its classes as Any; the three subclasses below
# (ContractRejection, MlstackModel, _BoundRESTServer) carry `type: ignore[misc]` for that alone.


class ContractRejection(InvalidInput):  # type: ignore[misc]  # kserve is untyped
    """A RequestError raised through KServe's error plumbing (an InvalidInput, so never a 500)."""

    def __init__(self, error: RequestError):
        super().__init__(error.message)
        self.error = error


def _as_v2_dict(request: InferRequest) -> dict[str, Any]:
    """KServe's parsed v2 request back into the JSON shape ``parse_v2`` reads."""
    inputs = []
    for tensor in request.inputs:
        data = tensor.data
        inputs.append(
            {
                "name": tensor.name,
                "shape": list(tensor.shape),
                "datatype": tensor.datatype,
                "data": data.tolist() if hasattr(data, "tolist") else data,
            }
        )
    body: dict[str, Any] = {"inputs": inputs, "id": request.id}
    if request.parameters is not None:
        body["parameters"] = dict(request.parameters)
    if request.request_outputs:
        body["outputs"] = [
            {"name": out.name} | ({"parameters": dict(out.parameters)} if out.parameters else {})
            for out in request.request_outputs
        ]
    return body


class MlstackModel(kserve.Model):  # type: ignore[misc]  # kserve is untyped
    """An mlstack model behind KServe's v1 and v2 endpoints."""

    def __init__(
        self,
        name: str,
        model_uri: str,
        version: str | None = None,
        max_batch_rows: int = 1000,
        loaded: LoadedModel | None = None,
    ):
        super().__init__(name, return_response_headers=True)
        self.model_uri = model_uri
        self.version = version
        self.max_batch_rows = max_batch_rows
        self.loaded = loaded
        self.scorer: Scorer | None = None

    def load(self) -> bool:
        if self.loaded is None:
            self.loaded = load(self.model_uri, name=self.name, version=self.version)
        self.scorer = Scorer(self.loaded)
        self.ready = True
        return True

    def check_request(self, protocol: ProtocolName, raw: bytes, inference_header: str | None) -> None:
        """The lean server's parsing of a raw body (``request_guard`` calls it before KServe does)."""
        assert self.scorer is not None
        try:
            parse_request(protocol, raw, inference_header, self.scorer.features, self.max_batch_rows)
        except RequestError as error:
            metrics.REJECTED.labels(self.name, protocol, error.rule).inc()
            raise

    def _reject(self, protocol: ProtocolName, error: RequestError) -> ContractRejection:
        metrics.REJECTED.labels(self.name, protocol, error.rule).inc()
        return ContractRejection(error)

    def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | bytes:
        assert self.scorer is not None and self.loaded is not None
        is_v2 = isinstance(payload, InferRequest)
        if isinstance(payload, bytes | str):  # v1 sent without a JSON content type
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise self._reject(
                    "v1", RequestError("body", "invalid_json", f"the body is not JSON: {exc}")
                ) from None
        protocol: ProtocolName = "v2" if is_v2 else "v1"
        features = self.scorer.features
        outputs: set[str] = set()
        try:
            if is_v2:
                body = _as_v2_dict(payload)
                parsed, outputs = parse_v2(body, features, self.max_batch_rows), binary.binary_outputs(body)
            else:
                parsed = parse_v1(payload, features, self.max_batch_rows)
            scored = self.scorer.score(parsed)
        except RequestError as error:
            raise self._reject(protocol, error) from None
        version = self.loaded.version
        metrics.PREDICTED_ROWS.labels(self.name, version, protocol, self.loaded.engine).inc(parsed.rows)
        if response_headers is not None:
            response_headers[MODEL_NAME_HEADER] = self.name
            response_headers[MODEL_VERSION_HEADER] = version
            response_headers[MODEL_ENGINE_HEADER] = self.loaded.engine
        if is_v2:
            request_id = parsed.request_id or (headers or {}).get("x-request-id") or uuid.uuid4().hex
            answer = v2_response(scored.predictions, scored.probabilities, self.name, version, request_id)
            if not outputs:
                return answer
            # bytes pass KServe's v2 handler as the body (kserve==0.21.0 rest/v2_endpoints.py infer),
            # with our headers; the same framing as the lean server (serving/binary.py)
            raw, json_length = binary.encode_response(answer, outputs)
            if response_headers is not None and json_length is not None:
                response_headers[binary.HEADER] = str(json_length)
            return raw if json_length is not None else answer
        return v1_response(scored.predictions, scored.probabilities, self.name, version)


async def _rejection_handler(_request: Request, exc: ContractRejection) -> ORJSONResponse:
    return ORJSONResponse(status_code=400, content=exc.error.to_dict())


async def _validation_handler(_request: Request, exc: RequestValidationError) -> ORJSONResponse:
    """FastAPI's schema errors (v2 body not an InferenceRequest) as our 400, not a 422."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    rule = str(first.get("type", "invalid_request"))
    message = f"{where}: {first.get('msg', 'invalid request body')}"
    return ORJSONResponse(status_code=400, content=refusal(where, rule, message))


async def _invalid_input_handler(_request: Request, exc: InvalidInput) -> ORJSONResponse:
    """KServe's own decoding errors (bad JSON, FP16 over JSON, CloudEvent errors) in our 400 shape."""
    if isinstance(exc, ContractRejection):
        return await _rejection_handler(_request, exc)
    return ORJSONResponse(status_code=400, content=refusal("body", "invalid_input", str(exc)))


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
    """FastAPI's own HTTP errors (unparsable body, unknown path, wrong method) with our JSON shape."""
    field = "body" if exc.status_code == 400 else ("method" if exc.status_code == 405 else "path")
    rule = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    return ORJSONResponse(
        status_code=exc.status_code,
        content=refusal(field, rule, f"{exc.detail} ({request.method} {request.url.path})"),
        headers=getattr(exc, "headers", None),
    )


def _rest_server_on(base: Any, host: str, read_timeout: float, idle_timeout: int) -> type[Any]:
    from mlstack.serving.timeouts import protocol

    class _BoundRESTServer(base):  # type: ignore[misc]  # kserve's RESTServer, untyped
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host
            # uvicorn's httptools protocol plus a read timeout (serving/timeouts.py); idle keep-alive
            self.config.http = protocol(read_timeout)
            self.config.timeout_keep_alive = idle_timeout

    return _BoundRESTServer


def run_kserve(
    model: MlstackModel,
    port: int,
    workers: int,
    threads: int = 1,
    host: str = "0.0.0.0",
    max_body_bytes: int = 8 * 1024 * 1024,
    read_timeout: float = 30.0,
    idle_timeout: int = 65,
) -> None:
    """Serve ``model`` with the stock ``kserve.ModelServer`` (blocks until stopped)."""
    from kserve import model_server
    from kserve.protocol.rest import server as rest_server

    from mlstack.serving.request_guard import RequestGuardMiddleware

    fast_sklearn(threads)
    model.load()
    app = model_server.app
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=max_body_bytes,
        model_name=model.name,
        check=model.check_request,
    )
    # kserve==0.21.0 kserve/protocol/rest/server.py RESTServer.__init__ hard-codes
    # uvicorn.Config(host="0.0.0.0"); ModelServer.start looks RESTServer up by module name, so a
    # subclass that sets the bind address honours --host (single worker; the CLI checks that)
    model_server.RESTServer = _rest_server_on(rest_server.RESTServer, host, read_timeout, idle_timeout)
    app.add_exception_handler(ContractRejection, _rejection_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    # RESTServer registers its InvalidInput handler at start, by this module-level name
    rest_server.invalid_input_handler = _invalid_input_handler
    server = kserve.ModelServer(
        http_port=port, workers=workers, enable_grpc=False, enable_latency_logging=False
    )
    # the stock server logs every request twice (access log + timing trace); keep only warnings
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    server.start([model])
