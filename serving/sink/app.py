"""The sink's HTTP face: ``POST /`` (KServe logger CloudEvents), ``POST /feedback``, health, metrics.

Answers: 200 ``{"status": "stored"|"duplicate", "id": ...}`` once the event is durable; 4xx with a
JSON body naming the field and the rule for anything it cannot accept; 503 with ``Retry-After`` when
the disk refuses the write or the held-events bounds are reached (the event is not acknowledged,
so KServe's logger retries). ``/healthz`` answers 503 while flushes fail, and says in its body
whether the registry answers (``"status": "degraded"`` while it does not: events are still
stored, so the pod stays in the Service).

``POST /`` is the hot path (every request and response of every model): a plain ASGI handler
reads the headers and body and answers directly; everything else goes through Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlstack.core import payload
from mlstack.serving.http_errors import error_handlers, json_response, refusal
from mlstack.serving.sink import metrics as m
from mlstack.serving.sink.events import EventError, TimeWindow, parse_event
from mlstack.serving.sink.feedback import EarlyLabels, check_feedback, feedback_frame, parse_feedback
from mlstack.serving.sink.state import Backpressure, Sink

if TYPE_CHECKING:
    from mlstack.core.contract import DataContract
    from mlstack.core.settings import Settings

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "5"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _reject(error: EventError) -> Response:
    m.REJECTED.labels(error.rule).inc()
    return json_response(error.status, error.to_dict())


def build_sink_app(
    sink: Sink, max_event_bytes: int = 16 * 1024 * 1024, time_window: TimeWindow | None = None
) -> ASGIApp:
    """The ASGI app around ``sink``; its lifespan recovers state and runs the periodic flush."""
    window = time_window or TimeWindow()
    too_large = EventError("body", "body_too_large", f"event body over {max_event_bytes} bytes", status=413)

    async def answer(send: Send, status: int, body: dict[str, Any], retry: bool = False) -> None:
        content = orjson.dumps(body)
        headers = [*_JSON_HEADERS, (b"content-length", str(len(content)).encode())]
        if retry:
            headers.append((b"retry-after", RETRY_AFTER_SECONDS.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def read_raw(scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > max_event_bytes:
                raise too_large
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("the client went away")
            chunk = message.get("body", b"")
            body = body + chunk if body else chunk
            if len(body) > max_event_bytes:
                raise too_large
            more = message.get("more_body", False)
        return body

    async def receive_event(scope: Scope, receive: Receive, send: Send) -> None:
        """POST /: one CloudEvent, acknowledged once it is in the WAL."""
        try:
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
            event = parse_event(headers, await read_raw(scope, receive), window)
        except EventError as error:
            m.REJECTED.labels(error.rule).inc()
            return await answer(send, error.status, error.to_dict())
        except ConnectionError:
            return
        try:
            status = await sink.accept(event)
        except Backpressure as exc:
            m.REJECTED.labels("backpressure").inc()
            return await answer(send, 503, refusal("server", "backpressure", str(exc)), retry=True)
        except OSError as exc:
            m.REJECTED.labels("wal_write").inc()
            body = refusal("server", "wal_write", f"could not persist the event: {exc}")
            return await answer(send, 503, body, retry=True)
        await answer(send, 200, {"status": status, "id": event.id})

    async def read(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_event_bytes:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_event_bytes:
                raise too_large
        return bytes(body)

    async def feedback(request: Request) -> Response:
        try:
            body = await read(request)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise EventError("body", "invalid_json", f"the body is not JSON: {exc}") from None
            items = parse_feedback(parsed)
            known, unknown = await asyncio.to_thread(check_feedback, sink.known, sink.contracts, items)
        except EventError as error:
            return _reject(error)
        received = pd.Timestamp.now(tz="UTC")
        if known:
            await asyncio.to_thread(payload.write_feedback, sink.store, feedback_frame(known, received))
            m.FEEDBACK.labels("stored").inc(len(known))
        if unknown:  # durable at once as orphans; held until their pair completes (sink.feedback)
            await asyncio.to_thread(
                payload.write_feedback, sink.store, feedback_frame(unknown, received), "feedback_orphans"
            )
            m.FEEDBACK.labels("orphan").inc(len(unknown))
            m.FEEDBACK.labels("held").inc(sink.hold_early_labels(unknown, received))
        return json_response(200, {"stored": len(known), "orphans": len(unknown)})

    async def healthz(_request: Request) -> Response:
        registry = sink.contracts.registry
        body = {"pending": len(sink.pending), "ready_rows": sink.ready_rows, "held_bytes": sink.held_bytes}
        body |= registry.to_dict()
        if sink.flush_error is not None:
            return json_response(
                503, {"status": "not_ready", "reason": f"flushes fail: {sink.flush_error}"} | body
            )
        if registry.up is False:
            reason = "the registry cannot be reached: rows are stored without contract names"
            return json_response(200, {"status": "degraded", "reason": reason} | body)
        return json_response(200, {"status": "ok"} | body)

    async def metrics(_request: Request) -> Response:
        sink.update_gauges()
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def refused(_request: Request) -> Response:  # POST / never gets here (the hot path below)
        return json_response(500, refusal("path", "internal_error", "unreachable"))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        sink.recover()
        stop = asyncio.Event()
        periodic = asyncio.create_task(sink.run_periodic_flush(stop))
        try:
            yield
        finally:
            stop.set()
            await periodic  # lets a flush under way finish
            try:
                await sink.flush(final=True)
            except Exception:
                log.exception("final flush failed; events stay in the WAL for the next start")
            sink.close()

    routes = [
        Route("/", refused, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    starlette = Starlette(routes=routes, lifespan=lifespan, exception_handlers=error_handlers(log))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "POST":
            try:
                return await receive_event(scope, receive, send)
            except Exception as exc:  # a bug: the one JSON error shape, never a dropped connection
                log.exception("unexpected error on POST /")
                body = refusal("server", "internal_error", f"{type(exc).__name__}: {exc}")
                return await answer(send, 500, body)
        await starlette(scope, receive, send)

    return app


def app_from_settings(settings: Settings, store: str, wal_dir: str) -> ASGIApp:
    """The sink app as ``mlstack sink`` runs it: settings' limits, contracts from the configured registry."""
    from mlstack.adapters import mlflow as mlflow_adapter
    from mlstack.serving.contracts import ContractCache

    cfg = settings.sink
    # a registry that does not answer must not hold a lookup thread for minutes (MLflow's defaults:
    # 7 retries with backoff factor 2, 120 s timeout; mlflow/environment_variables.py at 3.17.2)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # MLflow is imported on the first lookup (in a worker thread), not at start
    registry = mlflow_adapter.from_settings(settings)
    uri = settings.resolved_tracking_uri

    def absent() -> bool:
        """An SQLite registry not created yet holds no model: nothing to look up, nothing to reach."""
        return uri.startswith("sqlite:///") and not os.path.exists(uri.removeprefix("sqlite:///"))

    def lookup(name: str, version: str) -> DataContract:
        if absent():
            raise LookupError(f"no registry at {uri}")
        return registry.registered_contract(name, version)

    def probe() -> None:
        if not absent():
            registry.client.search_registered_models(max_results=1)

    contracts = ContractCache(
        lookup,
        retry_seconds=cfg.contract_retry_seconds,
        on_outcome=lambda o: m.CONTRACT_LOOKUPS.labels(o).inc(),
    )
    contracts.probe(probe)
    sink = Sink(
        store,
        wal_dir,
        cfg.flush_rows,
        cfg.flush_seconds,
        cfg.pair_timeout_seconds,
        cfg.dedup_hours * 3600,
        contracts=contracts,
        max_pending_bytes=cfg.max_pending_bytes,
        max_pending_events=cfg.max_pending_events,
        max_dedup_ids=cfg.max_dedup_ids,
        early_labels=EarlyLabels(cfg.early_label_seconds, cfg.max_early_labels),
        contract_wait_seconds=cfg.contract_wait_seconds,
    )
    window = TimeWindow(cfg.max_event_age_hours * 3600, cfg.max_future_seconds)
    return build_sink_app(sink, cfg.max_event_bytes, window)
