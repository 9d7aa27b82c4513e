"""One micro-batch: events in; predictions, dead letters and payload chunks out. Pure: no Kafka here.

Per event: the routing picks the variant by key; the predictor's parser reads the value
(``decode``); the variant's ``Scorer.check`` judges it by the contract. Accepted events that passed
the contract's fast check are scored together, one engine call per variant (the lean server's
adaptive batching does the same), the others alone on the frame ``check`` returned, exactly as the
predictor would score that request. Each output answers in the event's own form (record, v1, v2)
with probabilities, and carries the variant that answered.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd

from mlstack.serving.protocol import RequestError, v1_response, v2_response
from mlstack.serving.stream import records as h
from mlstack.serving.stream.decode import Decoded, Shape, decode, rejection_of
from mlstack.serving.stream.dlq import DlqReason, Rejection, dead_letter
from mlstack.serving.stream.payloads import RowsBuilder, TimeWindow, encode, event_time
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
    dlq_value_bytes: int = 65_536
    window: TimeWindow = field(default_factory=TimeWindow)


@dataclass
class BatchResult:
    records: list[OutRecord]
    scored: int = 0  # events answered with a prediction
    rows: int = 0  # rows scored
    dead: Counter = field(default_factory=Counter)  # DlqReason -> events
    variants: Counter = field(default_factory=Counter)  # variant -> events


@dataclass
class _Accepted:
    event: InEvent
    decoded: Decoded
    frame: pd.DataFrame | None  # None: the fast check passed (score with the others)
    proba: np.ndarray | None = None


def _answer(item: _Accepted, served: Served, model: str) -> bytes:
    proba = item.proba if item.proba is not None else np.zeros(0)
    predictions = (proba >= served.scorer.model.threshold).astype(np.int64).tolist()
    probabilities = proba.astype(float).tolist()
    if item.decoded.shape == Shape.RECORD:
        body = {
            "model_name": model,
            "model_version": served.version,
            "variant": served.variant.value,
            "prediction": predictions[0],
            "probability": probabilities[0],
        }
    elif item.decoded.shape == Shape.V1:
        body = v1_response(predictions, probabilities, model, served.version) | {
            "variant": served.variant.value
        }
    else:
        request_id = item.decoded.parsed.request_id or item.event.request_id
        body = v2_response(predictions, probabilities, model, served.version, request_id) | {
            "variant": served.variant.value
        }
    return orjson.dumps(body)


def _score_variant(served: Served, items: list[_Accepted]) -> list[tuple[_Accepted, Rejection]]:
    """Fill each item's probabilities; returns the items the engine failed on (model errors)."""
    scorer = served.scorer
    together = [item for item in items if item.frame is None]
    failed: list[tuple[_Accepted, Rejection]] = []
    if together:
        merged = {
            name: [v for item in together for v in item.decoded.parsed.columns[name]]
            for name in scorer.features
        }
        try:
            proba = scorer.probabilities(merged)
            start = 0
            for item in together:
                rows = item.decoded.parsed.rows
                item.proba = proba[start : start + rows]
                start += rows
        except Exception:  # one event the engine cannot take must not fail the others: score alone
            log.exception(
                "scoring %d events of v%s together failed; scoring them one by one",
                len(together),
                served.version,
            )
            for item in together:
                item.frame = scorer.frame(item.decoded.parsed.columns)
    for item in items:
        if item.proba is not None:
            continue
        try:
            item.proba = scorer.probabilities(item.decoded.parsed.columns, item.frame)
        except Exception as exc:
            failed.append(
                (
                    item,
                    Rejection(
                        reason=DlqReason.MODEL_ERROR,
                        field="value",
                        rule="model_error",
                        message=str(exc)[:500],
                    ),
                )
            )
    return failed


def score_batch(events: list[InEvent], routing: Routing, ctx: BatchContext, now_ns: int) -> BatchResult:
    """Score one micro-batch under one routing; every event ends as a prediction or a dead letter."""
    result = BatchResult([])
    accepted: dict[str, list[_Accepted]] = {}
    served_by: dict[str, Served] = {}
    dead: list[tuple[InEvent, Rejection]] = []
    for event in events:
        named = event.header(h.MODEL)
        if named is not None and named != routing.model.encode():
            text = named[:200].decode("utf-8", "replace")
            dead.append(
                (
                    event,
                    Rejection(
                        reason=DlqReason.UNKNOWN_MODEL,
                        field=h.MODEL,
                        rule="unknown_model",
                        message=f"the event is for model {text!r}; this scorer serves {routing.model!r}",
                    ),
                )
            )
            continue
        served = routing.route(event.key, event.partition, event.offset)
        decoded = decode(event.value, served.scorer.features, ctx.max_event_bytes, ctx.max_rows)
        if isinstance(decoded, Rejection):
            dead.append((event, decoded))
            continue
        try:
            frame = served.scorer.check(decoded.parsed)
        except RequestError as error:
            dead.append((event, rejection_of(error, by_contract=True)))
            continue
        accepted.setdefault(served.version, []).append(_Accepted(event, decoded, frame))
        served_by[served.version] = served
    for version, items in accepted.items():
        dead.extend((item.event, rejection) for item, rejection in _score_variant(served_by[version], items))
    records = result.records
    for version, items in accepted.items():
        served = served_by[version]
        builder = RowsBuilder(
            served.scorer.contract,
            {
                "inference_service": ctx.inference_service,
                "namespace": ctx.namespace,
                "model_name": routing.model,
                "model_version": version,
            },
        )
        for item in items:
            if item.proba is None:
                continue  # a model error: in the dead letters
            event = item.event
            headers = [
                (h.MODEL_NAME, routing.model.encode()),
                (h.MODEL_VERSION, version.encode()),
                (h.VARIANT, served.variant.value.encode()),
                (h.REQUEST_ID, event.request_id.encode()),
                *event.source_headers(),
            ]
            records.append(
                OutRecord(ctx.output_topic, event.key, _answer(item, served, routing.model), headers)
            )
            parsed = item.decoded.parsed
            builder.add(
                event.request_id,
                parsed.rows,
                event_time(event.timestamp_ms, now_ns, ctx.window),
                parsed.columns,
                item.proba,
                checked=item.frame is None,
            )
            result.scored += 1
            result.rows += parsed.rows
            result.variants[served.variant.value] += 1
        if len(builder):
            table = builder.table(now_ns, served.scorer.model.threshold)
            # spread payload chunks over the payload partitions (and so the store writers) by source partition
            key = f"{ctx.inference_service}/{version}/{items[0].event.partition}".encode()
            records.extend(OutRecord(ctx.payload_topic, key, chunk, []) for chunk in encode(table))
    for event, rejection in dead:
        records.append(dead_letter(event, rejection, ctx.dlq_topic, ctx.dlq_value_bytes))
        result.dead[rejection.reason] += 1
    return result
