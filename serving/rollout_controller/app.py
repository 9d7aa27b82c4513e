"""The controller's HTTP face: ``POST /webhooks/mlflow``, ``/status``, ``/metrics``, ``/healthz``.

Answers to a delivery (the JSON error shape of ``serving.http_errors`` for refusals):

- 202 ``{"status": "accepted", ...}``: signed, fresh, new; the model's services are queued for a
  reconcile from the registry (the body is never trusted for what to do);
- 200 ``{"status": "duplicate"}``: that delivery id was already accepted (nothing is queued again);
  200 ``{"status": "ignored"}``: an event of no served model (a prompt, an unmanaged model);
- 401: missing or bad signature headers, a signature that does not match, or a timestamp outside
  ``rollout.webhook_tolerance_seconds`` (a replay); 400: signed but malformed body;
  413: a body over ``rollout.webhook_max_body_bytes``;
- 503 + ``Retry-After``: this replica does not hold the Lease (MLflow retries 503: delivery.py
  ``_create_webhook_session`` status_forcelist, respect_retry_after_header).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlstack.serving.http_errors import error_handlers, error_response, json_response
from mlstack.serving.rollout_controller.controller import Controller
from mlstack.serving.rollout_controller.webhook import Refused, authenticate, parse_event

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/mlflow"


def _refuse(controller: Controller, refusal: Refused) -> Response:
    controller.metrics.deliveries.labels(refusal.rule).inc()
    log.warning("webhook refused (%s): %s", refusal.rule, refusal.message)
    return json_response(refusal.status, refusal.to_dict())


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(413, "body", "too_large", f"the body is over {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, "body", "too_large", f"the body is over {limit} bytes")
    return body


def build_app(controller: Controller) -> Starlette:
    cfg = controller.settings.rollout

    async def webhook(request: Request) -> Response:
        try:
            body = await _read_body(request, cfg.webhook_max_body_bytes)
            delivery = authenticate(
                controller.secret, request.headers, body, time.time(), cfg.webhook_tolerance_seconds
            )
            event = parse_event(body)
        except Refused as refusal:
            return _refuse(controller, refusal)
        if not controller.elector.is_leader():
            controller.metrics.deliveries.labels("not_leader").inc()
            return error_response(
                503,
                "lease",
                "not_leader",
                f"this replica does not hold Lease {cfg.lease_name!r} (holder: {controller.elector.holder})",
                headers={"Retry-After": "1", "Connection": "close"},
            )
        if not controller.deliveries.first_time(delivery.delivery_id):
            controller.metrics.deliveries.labels("duplicate").inc()
            return json_response(200, {"status": "duplicate", "delivery_id": delivery.delivery_id})
        names = controller.reconciler.names_for(event.model) if event.model else []
        if not names:
            controller.metrics.deliveries.labels("ignored").inc()
            why = "no served model" if event.model is None else f"no managed service serves {event.model!r}"
            return json_response(
                200, {"status": "ignored", "reason": f"{event.entity}.{event.action}: {why}"}
            )
        for name in names:
            controller.reconciler.queue.add(name, "webhook")
        controller.metrics.deliveries.labels("accepted").inc()
        log.info("webhook %s.%s for %s: reconciling %s", event.entity, event.action, event.model, names)
        return json_response(
            202,
            {"status": "accepted", "delivery_id": delivery.delivery_id, "inference_services": names},
        )

    async def status(_request: Request) -> Response:
        return json_response(200, controller.status())

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(controller.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return json_response(200, {"status": "ok", "leader": controller.elector.is_leader()})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        controller.start()
        try:
            yield
        finally:
            controller.stop()

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),
            Route("/status", status),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
        ],
        exception_handlers=error_handlers(log),
        lifespan=lifespan,
    )
