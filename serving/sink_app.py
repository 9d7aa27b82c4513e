"""The sink's HTTP face: ``POST /`` (KServe logger CloudEvents), ``POST /feedback``, health, metrics.

Answers: 200 ``{"status": "stored"|"duplicate", "id": ...}`` once the event is durable; 4xx with a
JSON body naming the field and the rule for anything it cannot accept; 503 if the disk refuses the
write (the event is not acknowledged, so the logger may retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import orjson
import pandas as pd
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlstack.core import payload
from serving.events import EventError, parse_event
from serving.sink import Sink

log = logging.getLogger(__name__)
REJECTED = Counter("mlstack_sink_rejected", "Requests to the sink answered 4xx, by rule", ["rule"])


def _json(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _reject(error: EventError) -> Response:
    REJECTED.labels(error.rule).inc()
    return _json(error.status, error.to_dict())


def parse_feedback(body: object) -> pd.DataFrame:
    """``{request_id, label[, row_index]}``, a list of them, or ``{"feedback": [...]}`` -> rows."""
    if isinstance(body, dict) and "feedback" in body:
        body = body["feedback"]
    items = body if isinstance(body, list) else [body]
    if not items:
        raise EventError("body", "empty_batch", "no feedback given")
    rows = []
    now = pd.Timestamp(datetime.now(UTC))
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EventError(f"[{i}]", "wrong_type", "each feedback item must be an object")
        request_id, label = item.get("request_id"), item.get("label")
        row_index = item.get("row_index", 0)
        if not isinstance(request_id, str) or not request_id:
            raise EventError(
                f"[{i}].request_id", "missing_field", "request_id (the ce-id / request id) is required"
            )
        if label is None or not isinstance(label, int | float | str | bool):
            raise EventError(f"[{i}].label", "missing_field", "label must be a number, string or boolean")
        if isinstance(row_index, bool) or not isinstance(row_index, int) or row_index < 0:
            raise EventError(f"[{i}].row_index", "wrong_type", "row_index must be a non-negative integer")
        rows.append({"request_id": request_id, "row_index": row_index, "label": label, "received_at": now})
    frame = pd.DataFrame(rows)
    if frame["label"].map(type).nunique() > 1:
        frame["label"] = frame["label"].astype(str)
    return frame


def build_sink_app(sink: Sink, max_event_bytes: int = 16 * 1024 * 1024) -> Starlette:
    """The ASGI app around ``sink``; its lifespan recovers state and runs the periodic flush."""

    async def read(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_event_bytes:
            raise EventError("body", "body_too_large", f"event body over {max_event_bytes} bytes", status=413)
        body = await request.body()
        if len(body) > max_event_bytes:
            raise EventError("body", "body_too_large", f"event body over {max_event_bytes} bytes", status=413)
        return body

    async def receive_event(request: Request) -> Response:
        try:
            event = parse_event(dict(request.headers), await read(request))
        except EventError as error:
            return _reject(error)
        try:
            status = await sink.accept(event)
        except EventError as error:
            return _reject(error)
        except OSError as exc:
            return _json(
                503, {"error": f"could not persist the event: {exc}", "field": "server", "rule": "wal_write"}
            )
        return _json(200, {"status": status, "id": event.id})

    async def feedback(request: Request) -> Response:
        try:
            body = await read(request)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise EventError("body", "invalid_json", f"the body is not JSON: {exc}") from None
            rows = parse_feedback(parsed)
        except EventError as error:
            return _reject(error)
        await asyncio.to_thread(payload.write_feedback, sink.store, rows)
        return _json(200, {"stored": len(rows)})

    async def healthz(_request: Request) -> Response:
        return _json(200, {"status": "ok", "pending": len(sink.pending), "ready_rows": sink.ready_rows})

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, _exc) -> Response:
        return _json(404, {"error": f"no endpoint {request.url.path}", "field": "path", "rule": "not_found"})

    async def not_allowed(request: Request, _exc) -> Response:
        return _json(
            405,
            {
                "error": f"{request.method} not allowed on {request.url.path}",
                "field": "method",
                "rule": "method_not_allowed",
            },
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        sink.recover()
        stop = asyncio.Event()
        periodic = asyncio.create_task(sink.run_periodic_flush(stop))
        try:
            yield
        finally:
            stop.set()
            await periodic  # lets a flush under way finish
            try:
                await sink.flush()
            except Exception:
                log.exception("final flush failed; events stay in the WAL for the next start")
            sink.close()

    routes = [
        Route("/", receive_event, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed})
