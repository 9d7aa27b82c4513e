"""One inference request on the lean server, as a raw ASGI endpoint: read, parse, check, score, answer.

Per request it does what the Starlette handler did (the body limit, the v1/v2 parsing, the contract
check, the engine, KServe's three latency histograms, the rejected/predicted/response counters, the
model name/version/engine headers, the v2 request id) and the binary tensor extension (v2), with the
label lookups of the Prometheus series done once, at start.
"""

from __future__ import annotations

import logging
import time
import uuid

import orjson
from prometheus_client import Counter

from mlstack.serving import binary, metrics
from mlstack.serving.asgi import ClientGone, Receive, Scope, Send, header, read_body, respond
from mlstack.serving.batching import Batcher
from mlstack.serving.decoding import parse_request
from mlstack.serving.http_errors import refusal
from mlstack.serving.protocol import (
    MODEL_ENGINE_HEADER,
    MODEL_NAME_HEADER,
    MODEL_VERSION_HEADER,
    ProtocolName,
    RequestError,
    v1_response,
    v2_response,
)
from mlstack.serving.scoring import Scorer

log = logging.getLogger(__name__)

JSON_HEADER = (b"content-type", b"application/json")
BINARY_HEADER = (b"content-type", binary.OCTET_STREAM.encode())
BINARY_LENGTH = binary.HEADER.encode()


class Inference:
    """The ASGI endpoint of one protocol (``v1`` or ``v2``) for the served model."""

    def __init__(
        self,
        scorer: Scorer,
        protocol: ProtocolName,
        max_rows: int,
        max_body_bytes: int,
        batcher: Batcher | None,
    ):
        model = scorer.model
        self.scorer, self.protocol, self.max_rows, self.limit = scorer, protocol, max_rows, max_body_bytes
        self.batcher = batcher
        self.name, self.version = model.name, model.version
        self.headers = [
            (MODEL_NAME_HEADER.encode(), model.name.encode()),
            (MODEL_VERSION_HEADER.encode(), model.version.encode()),
            (MODEL_ENGINE_HEADER.encode(), model.engine.encode()),
        ]
        labels = {"model_name": model.name}
        self.pre = metrics.PRE_HIST_TIME.labels(**labels)
        self.predict = metrics.PREDICT_HIST_TIME.labels(**labels)
        self.post = metrics.POST_HIST_TIME.labels(**labels)
        self.rows = metrics.PREDICTED_ROWS.labels(model.name, model.version, protocol, model.engine)
        # the series exist from the start, so increase() counts every request
        self.responses = {code: self._responses(code) for code in (200, 500)}

    def _responses(self, code: int) -> Counter:
        return metrics.RESPONSES.labels(self.name, self.version, self.protocol, str(code))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request and count the answer by status code (an exception counts 500)."""
        try:
            status, body, headers = await self.answer(scope, receive)
        except ClientGone:
            return
        except Exception as exc:  # a bug, not the client's: the one JSON error shape, logged
            log.exception("unexpected error on %s", scope.get("path"))
            status, headers = 500, [JSON_HEADER]
            body = orjson.dumps(refusal("server", "internal_error", f"{type(exc).__name__}: {exc}"))
        counter = self.responses.get(status)
        if counter is None:
            counter = self.responses[status] = self._responses(status)
        counter.inc()
        await respond(send, status, body, headers)

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        asked = scope.get("path_params", {}).get("model_name", self.name)
        if asked != self.name:
            message = f"Model with name {asked} does not exist."
            return 404, orjson.dumps(refusal("model_name", "model_not_found", message)), [JSON_HEADER]
        started = time.perf_counter()
        scorer = self.scorer
        try:
            raw = await read_body(scope, receive, self.limit)
            inference_header = header(scope, BINARY_LENGTH) if self.protocol == "v2" else None
            parsed, outputs = parse_request(
                self.protocol, raw, inference_header, scorer.features, self.max_rows
            )
            parsed_at = time.perf_counter()
            frame = scorer.check(parsed)
            if self.batcher is not None and frame is None:
                proba = await self.batcher.probabilities(parsed.columns, parsed.rows)
            else:
                proba = scorer.probabilities(parsed.columns, frame)
            scored = scorer.answer(proba, parsed.want_probabilities)
        except RequestError as error:
            metrics.REJECTED.labels(self.name, self.protocol, error.rule).inc()
            status = 413 if error.rule == "body_too_large" else 400
            return status, orjson.dumps(error.to_dict()), [JSON_HEADER]
        scored_at = time.perf_counter()
        self.pre.observe(parsed_at - started)
        self.predict.observe(scored_at - parsed_at)
        self.rows.inc(parsed.rows)
        headers = [JSON_HEADER, *self.headers]
        if self.protocol == "v2":
            request_id = parsed.request_id or header(scope, b"x-request-id") or uuid.uuid4().hex
            response = v2_response(
                scored.predictions, scored.probabilities, self.name, self.version, request_id
            )
            body, json_length = (
                binary.encode_response(response, outputs) if outputs else (orjson.dumps(response), None)
            )
            if json_length is not None:
                headers = [BINARY_HEADER, *self.headers, (BINARY_LENGTH, str(json_length).encode())]
        else:
            body = orjson.dumps(
                v1_response(scored.predictions, scored.probabilities, self.name, self.version)
            )
        self.post.observe(time.perf_counter() - scored_at)
        return 200, body, headers
