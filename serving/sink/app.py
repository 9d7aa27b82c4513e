"""The sink's HTTP face: ``POST /`` (KServe logger CloudEvents), ``POST /feedback``, health, metrics.

Answers: 200 ``{"status": "stored"|"duplicate", "id": ...}`` once the event is durable; 4xx with a
JSON body naming the field and the rule for anything it cannot accept; 503 with ``Retry-After`` when
the disk refuses the write or the pending-halves byte cap is reached (the event is not
acknowledged, so KServe's logger retries). ``/healthz`` answers 503 while flushes fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime

import orjson
import pandas as pd
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlstack.core import payload
from mlstack.core.labels import label_problem
from mlstack.serving.http_errors import error_handlers, error_response, json_response
from mlstack.serving.sink import metrics as m
from mlstack.serving.sink.events import EventError, TimeWindow, parse_event
from mlstack.serving.sink.state import Backpressure, Sink

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "5"


def _reject(error: EventError) -> Response:
    m.REJECTED.labels(error.rule).inc()
    return json_response(error.status, error.to_dict())


def parse_feedback(body: object) -> list[dict]:
    """``{request_id, label[, row_index]}``, a list of them, or ``{"feedback": [...]}`` -> items.

    Checks the shape only; ``check_feedback`` judges each label against what was logged.
    """
    if isinstance(body, dict) and "feedback" in body:
        body = body["feedback"]
    items = body if isinstance(body, list) else [body]
    if not items:
        raise EventError("body", "empty_batch", "no feedback given")
    if len(items) > 10_000:
        raise EventError("body", "batch_too_large", "at most 10000 feedback items per request")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EventError(f"[{i}]", "wrong_type", "each feedback item must be an object")
        request_id, label = item.get("request_id"), item.get("label")
        row_index = item.get("row_index", 0)
        if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
            raise EventError(
                f"[{i}].request_id", "missing_field", "request_id (the ce-id / request id) is required"
            )
        if label is None or not isinstance(label, int | float | str | bool):
            raise EventError(f"[{i}].label", "missing_field", "label must be a number, string or boolean")
        if isinstance(label, str) and len(label) > 256:
            raise EventError(f"[{i}].label", "invalid_label", "label is longer than 256 characters")
        if isinstance(row_index, bool) or not isinstance(row_index, int) or not 0 <= row_index < 2**31:
            raise EventError(f"[{i}].row_index", "wrong_type", "row_index must be a non-negative integer")
        rows.append({"request_id": request_id, "row_index": row_index, "label": label})
    return rows


def check_feedback(sink: Sink, items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(labels of logged ids, orphans): a label is checked against the model's target, a row index
    against the rows logged; an id the sink does not know (never logged, or older than the dedup
    window) is an orphan, kept apart so it can never be joined to the wrong prediction."""
    known, orphans = [], []
    for i, item in enumerate(items):
        origin = sink.known(item["request_id"])
        if origin is None:
            label = item["label"]
            problem = None if isinstance(label, str) else label_problem(label, None)
            if problem:
                raise EventError(f"[{i}].label", "invalid_label", problem)
            orphans.append(item)
            continue
        model, version, rows = origin
        contract = sink.contracts.get(model, version)
        problem = label_problem(item["label"], contract.target if contract else None)
        if problem and contract is None:
            problem += " (the model's contract could not be read from the registry)"
        if problem:
            raise EventError(f"[{i}].label", "invalid_label", f"{model} version {version}: {problem}")
        if rows and item["row_index"] >= rows:
            raise EventError(
                f"[{i}].row_index",
                "row_out_of_range",
                f"request {item['request_id']} logged {rows} row(s); row_index {item['row_index']} does not exist",
            )
        known.append(item)
    return known, orphans


def _frame(items: list[dict]) -> pd.DataFrame:
    now = pd.Timestamp(datetime.now(UTC))
    return pd.DataFrame(
        {
            "request_id": [i["request_id"] for i in items],
            "row_index": pd.array([i["row_index"] for i in items], dtype="int64"),
            "label": [payload.label_text(i["label"]) for i in items],
            "received_at": [now] * len(items),
        }
    )


def build_sink_app(
    sink: Sink, max_event_bytes: int = 16 * 1024 * 1024, time_window: TimeWindow | None = None
) -> Starlette:
    """The ASGI app around ``sink``; its lifespan recovers state and runs the periodic flush."""
    window = time_window or TimeWindow()

    async def read(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_event_bytes:
            raise EventError("body", "body_too_large", f"event body over {max_event_bytes} bytes", status=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_event_bytes:
                raise EventError(
                    "body", "body_too_large", f"event body over {max_event_bytes} bytes", status=413
                )
        return bytes(body)

    async def receive_event(request: Request) -> Response:
        try:
            event = parse_event(dict(request.headers), await read(request), window)
        except EventError as error:
            return _reject(error)
        try:
            status = await sink.accept(event)
        except Backpressure as exc:
            m.REJECTED.labels("backpressure").inc()
            return error_response(
                503, "server", "backpressure", str(exc), {"Retry-After": RETRY_AFTER_SECONDS}
            )
        except OSError as exc:
            m.REJECTED.labels("wal_write").inc()
            return error_response(
                503,
                "server",
                "wal_write",
                f"could not persist the event: {exc}",
                {"Retry-After": RETRY_AFTER_SECONDS},
            )
        return json_response(200, {"status": status, "id": event.id})

    async def feedback(request: Request) -> Response:
        try:
            body = await read(request)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise EventError("body", "invalid_json", f"the body is not JSON: {exc}") from None
            known, orphans = await asyncio.to_thread(check_feedback, sink, parse_feedback(parsed))
        except EventError as error:
            return _reject(error)
        if known:
            await asyncio.to_thread(payload.write_feedback, sink.store, _frame(known))
            m.FEEDBACK.labels("stored").inc(len(known))
        if orphans:
            await asyncio.to_thread(payload.write_feedback, sink.store, _frame(orphans), "feedback_orphans")
            m.FEEDBACK.labels("orphan").inc(len(orphans))
        return json_response(200, {"stored": len(known), "orphans": len(orphans)})

    async def healthz(_request: Request) -> Response:
        body = {"pending": len(sink.pending), "ready_rows": sink.ready_rows}
        if sink.flush_error is not None:
            return json_response(
                503, {"status": "not_ready", "reason": f"flushes fail: {sink.flush_error}"} | body
            )
        return json_response(200, {"status": "ok"} | body)

    async def metrics(_request: Request) -> Response:
        sink.update_gauges()
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

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
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=error_handlers(log))


def app_from_settings(settings, store: str, wal_dir: str) -> Starlette:
    """The sink app as ``mlstack sink`` runs it: settings' limits, contracts from the configured registry."""
    from mlstack.serving.contracts import ContractCache, registry_lookup

    cfg = settings.sink
    configured: list[bool] = []

    def lookup(name: str, version: str):
        uri = settings.resolved_tracking_uri
        if uri.startswith("sqlite:///") and not os.path.exists(uri.removeprefix("sqlite:///")):
            raise LookupError(f"no registry at {uri}")  # an absent SQLite registry holds no model
        if not configured:  # MLflow is imported on the first lookup (in a flush thread), not at start
            from mlstack.core.registry import configure

            configure(settings)
            configured.append(True)
        return registry_lookup(name, version)

    sink = Sink(
        store,
        wal_dir,
        cfg.flush_rows,
        cfg.flush_seconds,
        cfg.pair_timeout_seconds,
        cfg.dedup_hours * 3600,
        contracts=ContractCache(lookup, retry_seconds=cfg.contract_retry_seconds),
        max_pending_bytes=cfg.max_pending_bytes,
    )
    window = TimeWindow(cfg.max_event_age_hours * 3600, cfg.max_future_seconds)
    return build_sink_app(sink, cfg.max_event_bytes, window)
