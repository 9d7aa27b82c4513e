"""One micro-batch: events in; predictions, dead letters and payload chunks out. Pure: no Kafka here.

Per event: the routing picks the variant by key; the predictor's parser reads the value
(``decode``); the variant's ``Scorer`` judges it by the contract. Accepted events whose values pass
the contract's fast check are scored together, one engine call per variant (what the lean
server's adaptive batching does), the others alone on the frame ``Scorer.check`` returned, exactly
as the predictor would score that request. Each output answers in the event's own form (record,
v1, v2) with probabilities, and carries the variant that answered.

Speed: a plain record whose keys are exactly the contract's features (the common event) skips the
general parser; its values go straight into the batch's columns and the fast check runs once per
column for the whole batch. Any doubt (a missing or extra key, a value the fast check refuses)
sends the event through ``decode`` + ``Scorer.check`` like every other form, so the answer and the
refusal are the predictor's either way.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlstack.serving.protocol import ParsedRequest, RequestError, v1_response, v2_response
from mlstack.serving.sink.events import TimeWindow
from mlstack.serving.stream import records as h
from mlstack.serving.stream.decode import Decoded, Shape, decode, rejection_of
from mlstack.serving.stream.dlq import DlqReason, Rejection, dead_letter
from mlstack.serving.stream.payloads import RowsBuilder, encode, event_time
from mlstack.serving.stream.records import InEvent, OutRecord
from mlstack.serving.stream.router import Routing, Served

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BatchContext:
    """Everything about a micro-batch that does not change between batches."""

    output_topic: str
    dlq_topic: str
    payload_topic: str
    inference_service: str
    namespace: str = ""
    max_event_bytes: int = 1_000_000
    max_rows: int = 1000
    dlq_value_bytes: int = 900_000
    window: TimeWindow = field(default_factory=TimeWindow)


@dataclass
class BatchResult:
    records: list[OutRecord]
    scored: int = 0  # events answered with a prediction
    rows: int = 0  # rows scored
    dead: Counter[DlqReason] = field(default_factory=Counter)  # DlqReason -> events
    variants: Counter[str] = field(default_factory=Counter)  # variant -> events


@dataclass
class _Accepted:
    event: InEvent
    decoded: Decoded
    frame: pd.DataFrame | None  # None: the fast check passed (score with the others)
    proba: list[float] | None = None


class _Variant:
    """The accepted events of one served version in this batch."""

    def __init__(self, served: Served):
        self.served = served
        self.records: list[tuple[InEvent, dict[str, Any]]] = []  # fast-path records: (event, body)
        self.rows: list[list[Any]] = []  # their values in contract order
        self.columns: dict[str, list[Any]] = {}  # the same values by feature, once settled
        self.items: list[_Accepted] = []  # every other accepted event

    def take_record(self, event: InEvent, body: dict[str, Any], features: list[str]) -> bool:
        if len(body) != len(features):
            return False
        try:
            row = [body[name] for name in features]
        except KeyError:
            return False
        self.records.append((event, body))
        self.rows.append(row)
        return True


def _fast_body(value: bytes | None, max_bytes: int) -> dict[str, Any] | None:
    """The decoded value when it is a plain JSON object within the size limit, else None (decode judges)."""
    if not value or len(value) > max_bytes or value[:1] != b"{":
        return None
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and "instances" not in body and "inputs" not in body else None


def _accept(
    variant: _Variant, event: InEvent, decoded: Decoded | Rejection, dead: list[tuple[InEvent, Rejection]]
) -> None:
    if isinstance(decoded, Rejection):
        dead.append((event, decoded))
        return
    try:
        frame = variant.served.scorer.check(decoded.parsed)
    except RequestError as error:
        dead.append((event, rejection_of(error, by_contract=True)))
        return
    variant.items.append(_Accepted(event, decoded, frame))


def _settle_records(variant: _Variant, ctx: BatchContext, dead: list[tuple[InEvent, Rejection]]) -> None:
    """Records whose values the fast check accepts stay in the batch's columns; the rest go the long way."""
    scorer = variant.served.scorer
    variant.columns = _transpose(variant.rows, scorer.features)
    if not variant.rows or scorer.conforms(variant.columns):
        return
    kept_records, kept_rows = [], []
    for (event, body), row in zip(variant.records, variant.rows, strict=True):
        if scorer.row_conforms(row):
            kept_records.append((event, body))
            kept_rows.append(row)
        else:
            _accept(
                variant, event, decode(event.value, scorer.features, ctx.max_event_bytes, ctx.max_rows), dead
            )
    variant.records, variant.rows = kept_records, kept_rows
    variant.columns = _transpose(kept_rows, scorer.features)


def _transpose(rows: list[list[Any]], features: list[str]) -> dict[str, list[Any]]:
    if not rows:
        return {name: [] for name in features}
    return {name: list(values) for name, values in zip(features, zip(*rows, strict=True), strict=True)}


def _score(variant: _Variant, dead: list[tuple[InEvent, Rejection]]) -> list[float] | None:
    """Probabilities of the fast records (in order); fills each item's. Engine failures become dead letters."""
    scorer = variant.served.scorer
    together = [item for item in variant.items if item.frame is None]
    columns = variant.columns
    if together:
        columns = {name: list(values) for name, values in columns.items()}
        for item in together:
            for name in scorer.features:
                columns[name].extend(item.decoded.parsed.columns[name])
    record_proba: list[float] | None = None
    if variant.rows or together:
        try:
            proba = scorer.probabilities(columns).tolist()
            record_proba = proba[: len(variant.rows)]
            start = len(variant.rows)
            for item in together:
                item.proba = proba[start : start + item.decoded.parsed.rows]
                start += item.decoded.parsed.rows
        except Exception:  # one event the engine cannot take must not fail the others: score alone
            log.exception(
                "scoring v%s's events together failed; scoring them one by one", variant.served.version
            )
            for event, body in variant.records:
                parsed = ParsedRequest({name: [body[name]] for name in scorer.features}, 1)
                variant.items.append(
                    _Accepted(event, Decoded(Shape.RECORD, parsed, body), scorer.frame(parsed.columns))
                )
            variant.records, variant.rows, variant.columns = [], [], _transpose([], scorer.features)
            for item in together:
                item.frame = scorer.frame(item.decoded.parsed.columns)
    for item in variant.items:
        if item.proba is not None:
            continue
        try:
            item.proba = np.asarray(
                scorer.probabilities(item.decoded.parsed.columns, item.frame), dtype=float
            ).tolist()
        except Exception as exc:
            rejection = Rejection(
                reason=DlqReason.MODEL_ERROR, field="value", rule="model_error", message=str(exc)[:500]
            )
            dead.append((item.event, rejection))
    return record_proba


def _answer(
    shape: Shape, predictions: list[int], proba: list[float], base: dict[str, Any], request_id: str
) -> bytes:
    if shape == Shape.RECORD:
        return orjson.dumps(base | {"prediction": predictions[0], "probability": proba[0]})
    name, version, variant = base["model_name"], base["model_version"], base["variant"]
    if shape == Shape.V1:
        return orjson.dumps(v1_response(predictions, proba, name, version) | {"variant": variant})
    return orjson.dumps(v2_response(predictions, proba, name, version, request_id) | {"variant": variant})


def score_batch(events: list[InEvent], routing: Routing, ctx: BatchContext, now_ns: int) -> BatchResult:
    """Score one micro-batch under one routing; every event ends as a prediction or a dead letter."""
    result = BatchResult([])
    variants: dict[str, _Variant] = {}
    dead: list[tuple[InEvent, Rejection]] = []
    model_bytes = routing.model.encode()
    for event in events:
        named = event.header(h.MODEL) if event.headers else None
        if named is not None and named != model_bytes:
            text = named[:200].decode("utf-8", "replace")
            message = f"the event is for model {text!r}; this scorer serves {routing.model!r}"
            dead.append(
                (
                    event,
                    Rejection(
                        reason=DlqReason.UNKNOWN_MODEL, field=h.MODEL, rule="unknown_model", message=message
                    ),
                )
            )
            continue
        served = routing.route(event.key, event.partition, event.offset)
        variant = variants.get(served.version) or variants.setdefault(served.version, _Variant(served))
        features = served.scorer.features
        body = _fast_body(event.value, ctx.max_event_bytes)
        if body is not None and variant.take_record(event, body, features):
            continue
        _accept(variant, event, decode(event.value, features, ctx.max_event_bytes, ctx.max_rows), dead)
    for variant in variants.values():
        _settle_records(variant, ctx, dead)
        _publish(variant, _score(variant, dead), routing.model, ctx, now_ns, result)
    for event, rejection in dead:
        result.records.append(dead_letter(event, rejection, ctx.dlq_topic, ctx.dlq_value_bytes))
        result.dead[rejection.reason] += 1
    return result


def _publish(
    variant: _Variant,
    record_proba: list[float] | None,
    model: str,
    ctx: BatchContext,
    now_ns: int,
    result: BatchResult,
) -> None:
    """Outputs and payload rows of one variant's scored events."""
    served = variant.served
    threshold = served.scorer.model.threshold
    base = {"model_name": model, "model_version": served.version, "variant": served.variant.value}
    fixed = [
        (h.MODEL_NAME, model.encode()),
        (h.MODEL_VERSION, served.version.encode()),
        (h.VARIANT, served.variant.value.encode()),
    ]
    meta = {
        "inference_service": ctx.inference_service,
        "namespace": ctx.namespace,
        "model_name": model,
        "model_version": served.version,
    }
    builder = RowsBuilder(served.scorer.contract, meta)
    records = result.records
    if variant.records and record_proba is not None:
        events = [event for event, _ in variant.records]
        for event, probability in zip(events, record_proba, strict=True):
            value = orjson.dumps(
                base | {"prediction": int(probability >= threshold), "probability": probability}
            )
            headers = [*fixed, (h.REQUEST_ID, event.request_id.encode()), *event.source_headers()]
            records.append(OutRecord(ctx.output_topic, event.key, value, headers))
        stamps = [event_time(e.timestamp_ms, now_ns, ctx.window) for e in events]
        builder.add_many([e.request_id for e in events], stamps, variant.columns, record_proba)
        result.scored += len(events)
        result.rows += len(events)
        result.variants[served.variant.value] += len(events)
    for item in variant.items:
        if item.proba is None:
            continue  # a model error: in the dead letters
        event, parsed = item.event, item.decoded.parsed
        predictions = [int(p >= threshold) for p in item.proba]
        request_id = parsed.request_id or event.request_id
        value = _answer(item.decoded.shape, predictions, item.proba, base, request_id)
        headers = [*fixed, (h.REQUEST_ID, event.request_id.encode()), *event.source_headers()]
        records.append(OutRecord(ctx.output_topic, event.key, value, headers))
        stamp = event_time(event.timestamp_ms, now_ns, ctx.window)
        builder.add(
            event.request_id, parsed.rows, stamp, parsed.columns, item.proba, checked=item.frame is None
        )
        result.scored += 1
        result.rows += parsed.rows
        result.variants[served.variant.value] += 1
    if len(builder):
        table = builder.table(now_ns, threshold)
        # spread payload chunks over the payload partitions (and so the store writers) by source partition
        first = variant.records[0][0] if variant.records else variant.items[0].event
        key = f"{ctx.inference_service}/{served.version}/{first.partition}".encode()
        records.extend(OutRecord(ctx.payload_topic, key, chunk, []) for chunk in encode(table))
