"""A request event and its response event -> payload-log rows: pure functions the sink calls.

``pair_rows`` makes one row per instance in the payload-log format (``mlstack.core.payload``): the
request parsed by the predictor's own parser (``mlstack.serving.protocol``), columns named and typed
by the model version's contract when it is known; ``rows_frame`` makes the flush's DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa

from mlstack.core import payload
from mlstack.core.contract import DataContract, Feature
from mlstack.serving.protocol import RequestError, parse_unnamed, parse_v1, parse_v2
from mlstack.serving.sink.events import MAX_ROWS, Event, EventError


def is_model_error(response: Event) -> bool:
    return response.is_error


def _flat(data: Any) -> Iterator[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flat(item)
    else:
        yield data


def _response_outputs(body: dict[str, Any]) -> tuple[list[Any], list[Any] | None, str | None, str | None]:
    """(predictions, probabilities or None, model name, model version) from a v1 or v2 response."""
    if "predictions" in body:
        probabilities = body.get("probabilities")
        return body["predictions"], probabilities, body.get("model_name"), body.get("model_version")
    predictions, probabilities = None, None
    for output in body.get("outputs") or []:
        if not isinstance(output, dict):
            continue
        if output.get("name") == "probability":
            probabilities = list(_flat(output.get("data")))
        elif predictions is None or output.get("name") == "predict":
            predictions = list(_flat(output.get("data")))
    if predictions is None:
        raise EventError("body.outputs", "no_predictions", "the response has no output tensor")
    return predictions, probabilities, body.get("model_name"), body.get("model_version")


def response_version(response: Event) -> tuple[str, str]:
    """(model name, model version) a response names (defaults: the service name, ``unknown``)."""
    return response.model_name or response.inference_service, response.model_version or "unknown"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def type_value(value: Any, feature: Feature) -> tuple[Any, bool]:
    """(value typed by the contract, whether it had to be dropped): the predictor's rule for a type.

    Numeric/integer features take JSON numbers and strings holding a finite decimal number
    (``"40"``, as the predictor does); categorical ones take text (numbers become their text,
    booleans ``True``/``False``). Anything else is stored as missing, its raw text kept.
    """
    if value is None:
        return None, False
    if feature.is_categorical:
        if isinstance(value, bool):
            return ("True" if value else "False"), False
        if isinstance(value, str | int | float):
            return (value.capitalize() if feature.type == "boolean" else value) if isinstance(
                value, str
            ) else str(value), False
        return None, True
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None, True
        return (number, False) if math.isfinite(number) else (None, True)
    parsed = _number(value)
    return (parsed, False) if parsed is not None else (None, True)


def request_columns(request: Event, contract: DataContract | None) -> tuple[dict[str, list[Any]], int]:
    """The request's columns through ``mlstack.serving.protocol`` (the predictor's parser); EventError if unparseable.

    With the contract, columns are the contract's features, typed by it; without, named as sent and
    positional values as ``input_<i>``.
    """
    body = request.body
    try:
        if contract is None:
            parsed = parse_unnamed(body, MAX_ROWS)
        elif "instances" in body:
            parsed = parse_v1(body, contract.feature_names, MAX_ROWS)
        else:
            parsed = parse_v2(body, contract.feature_names, MAX_ROWS)
    except RequestError as exc:
        raise EventError(f"request.{exc.field}", exc.rule, exc.message, status=422) from None
    return parsed.columns, parsed.rows


def pair_rows(
    request: Event, response: Event, contract: DataContract | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows of one request/response pair and the count of dropped values per feature.

    EventError (422) when the two cannot belong together (the sink keeps them under ``unpaired/``).
    Times stay ISO strings here (cheap per event); ``rows_frame`` converts a whole flush at once.
    """
    columns, count = request_columns(request, contract)
    predictions, probabilities, _, _ = _response_outputs(response.body)  # parsed here, in the flush
    model_name, model_version = response_version(response)
    if not isinstance(predictions, list) or len(predictions) != count:
        raise EventError(
            "body",
            "pair_mismatch",
            f"event {request.id}: the request has {count} instance(s) but the response "
            f"{len(predictions) if isinstance(predictions, list) else 'no'} prediction(s)",
            status=422,
        )
    if not isinstance(probabilities, list) or len(probabilities) != count:
        probabilities = None
    features = {f.name: f for f in contract.features} if contract is not None else {}
    dropped: dict[str, int] = {}
    rows = []
    for index in range(count):
        values: dict[str, Any] = {}
        invalid: dict[str, str] = {}
        for name, column in columns.items():
            if name in payload.META_COLUMNS or name in payload.EXTRA_COLUMNS:
                continue  # a feature named like a metadata column cannot overwrite it
            raw = column[index]
            if name in features:
                typed, bad = type_value(raw, features[name])
                if bad:
                    invalid[name] = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
                    dropped[name] = dropped.get(name, 0) + 1
                values[name] = typed
            else:
                values[name] = raw
        prediction = _number(predictions[index])
        probability = _number(probabilities[index]) if probabilities is not None else None
        rows.append(
            values
            | {
                "request_id": request.id,
                "row_index": index,
                "inference_service": request.inference_service,
                "namespace": request.namespace,
                "component": request.component or response.component,
                "model_name": model_name,
                "model_version": model_version,
                "requested_at": request.time,
                "responded_at": response.time,
                "prediction": math.nan if prediction is None else prediction,
                "probability": math.nan if probability is None else probability,
                "invalid_values": orjson.dumps(invalid).decode() if invalid else None,
                "ce_time_replaced": request.time_replaced or response.time_replaced,
            }
        )
    return rows, dropped


def rows_frame(rows: list[dict[str, Any]], contract: DataContract | None = None) -> pd.DataFrame:
    """One model version's rows as a payload-log DataFrame: UTC timestamps, columns typed by the contract."""
    frame = pd.DataFrame(rows)
    for column in ("requested_at", "responded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in ("invalid_values", "ce_time_replaced"):
        frame[column] = frame[column].astype("string")
    typed = set()
    if contract is not None:
        for feature in contract.features:
            if feature.name in frame.columns:
                kind = "string" if feature.is_categorical else "float64"
                frame[feature.name] = frame[feature.name].astype(kind)
                typed.add(feature.name)
    for column in frame.columns:
        if column not in typed and column not in payload.META_COLUMNS and frame[column].dtype == object:
            frame[column] = _storable(frame[column])
    return frame


def _storable(column: pd.Series) -> pd.Series:
    """A column no contract types, as sent when Parquet can hold it in one type, else as text.

    Without a contract a feature column is stored as sent; values one Parquet type cannot hold
    (``40`` in one row, ``"sixty"`` or ``true`` in another) would make the whole pair unwritable,
    so such a column becomes text (JSON for non-strings) and readers type it by the contract.
    """
    try:
        pa.array(column, from_pandas=True)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return column.map(_text).astype("string")
    return column


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)
