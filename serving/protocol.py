"""KServe v1 and v2 (Open Inference) request parsing and response building: pure functions.

Both servers (the stock ``kserve.ModelServer`` and the lean ASGI app) call these, so a request means
the same thing whichever answers it. Parsing turns a decoded JSON body into one column of Python
scalars per contract feature; anything structurally wrong raises ``RequestError`` naming the field
and the rule, which the servers turn into HTTP 400 with a JSON body.

v1: ``{"instances": [[...], ...]}`` in contract column order, or ``[{"feature": value}, ...]``.
v2: one input per feature (``shape [n]`` or ``[n, 1]``), or one 2-D tensor ``[n, n_features]`` in
contract order (row-major, flat or nested ``data``). Probabilities come back when asked:
``"parameters": {"return_probabilities": true}`` (both protocols) or a v2 ``outputs`` entry named
``probability``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from mlstack.serving.http_errors import refusal

ProtocolName = Literal["v1", "v2"]  # KServe's REST protocols: /v1/models/<m>:predict, /v2/models/<m>/infer

V2_DATATYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
}
# response headers of both servers: which model, version and engine answered
MODEL_NAME_HEADER = "x-model-name"
MODEL_VERSION_HEADER = "x-model-version"
MODEL_ENGINE_HEADER = "x-model-engine"  # "onnx" (the compiled artifact) or "sklearn"
PREDICTION_OUTPUT = "predict"
PROBABILITY_OUTPUT = "probability"
_SCALARS = (str, int, float, bool, type(None))


class RequestError(ValueError):
    """A client mistake: which field, which rule, and a sentence a human can act on."""

    def __init__(self, field: str, rule: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.message = message
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        return refusal(self.field, self.rule, self.message, self.details)


@dataclass
class ParsedRequest:
    """Columns in contract order, plus what the caller asked to get back."""

    columns: dict[str, list[Any]]
    rows: int
    want_probabilities: bool = False
    request_id: str | None = None


def _want_probabilities(body: dict[str, Any]) -> bool:
    params = body.get("parameters")
    if params is None:
        return False
    if not isinstance(params, dict):
        raise RequestError("parameters", "wrong_type", "'parameters' must be a JSON object")
    flag = params.get("return_probabilities", False)
    if not isinstance(flag, bool):
        raise RequestError(
            "parameters.return_probabilities", "wrong_type", "'return_probabilities' must be true or false"
        )
    return flag


def _check_parameters(params: Any, where: str) -> None:
    """A v2 ``$parameters`` object: string, number or boolean values only (the protocol's grammar).

    KServe's REST model types them so (kserve==0.21.0 ``protocol/rest/v2_datamodels.py``
    ``InferParameter = Union[StrictFloat, StrictInt, StrictBool, str]``); checking here makes both
    servers refuse the same bodies.
    """
    if params is None:
        return
    if not isinstance(params, dict):
        raise RequestError(where, "wrong_type", f"'{where}' must be a JSON object")
    for key, value in params.items():
        if not isinstance(value, str | int | float):  # bool is an int
            raise RequestError(
                f"{where}.{key}",
                "wrong_type",
                f"parameter {key!r} must be a string, number or boolean, got {type(value).__name__}",
            )


def _check_rows(rows: int, max_rows: int, field_name: str) -> None:
    if rows == 0:
        raise RequestError(field_name, "empty_batch", f"'{field_name}' holds no rows; send at least one")
    if rows > max_rows:
        raise RequestError(
            field_name,
            "batch_too_large",
            f"'{field_name}' holds {rows} rows; the limit is {max_rows} per request (serving.max_batch_rows)",
        )


def _scalar(value: Any, feature: str, row: int) -> Any:
    if not isinstance(value, _SCALARS):
        raise RequestError(
            feature,
            "wrong_type",
            f"row {row}, feature {feature!r}: expected a number, string, boolean or null, "
            f"got {type(value).__name__}",
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
        return float(value)  # beyond int64: let the contract judge it as a (huge) number
    return value


def load_json(raw: bytes) -> Any:
    """A request body decoded as JSON; RequestError ``invalid_json`` otherwise."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError("body", "invalid_json", f"the request body is not valid JSON: {exc}") from None


def parse_v1(body: Any, features: list[str], max_rows: int) -> ParsedRequest:
    """Parse a v1 ``:predict`` body into columns; raise RequestError on any structural mistake."""
    if not isinstance(body, dict):
        raise RequestError("body", "wrong_type", "the request body must be a JSON object with 'instances'")
    if "instances" not in body:
        raise RequestError("instances", "missing_field", "the request body needs an 'instances' list")
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RequestError("instances", "wrong_type", "'instances' must be a list of rows")
    _check_rows(len(instances), max_rows, "instances")
    columns: dict[str, list[Any]] = {name: [] for name in features}
    known = set(features)
    for row, instance in enumerate(instances):
        if isinstance(instance, dict):
            unknown = [key for key in instance if key not in known]
            if unknown:
                raise RequestError(
                    str(unknown[0]),
                    "unknown_feature",
                    f"row {row}: unknown feature(s) {sorted(map(str, unknown))}; the model takes {features}",
                )
            missing = [name for name in features if name not in instance]
            if missing:
                raise RequestError(missing[0], "missing_feature", f"row {row}: missing feature(s) {missing}")
            for name in features:
                columns[name].append(_scalar(instance[name], name, row))
        elif isinstance(instance, list):
            if len(instance) != len(features):
                raise RequestError(
                    "instances",
                    "wrong_length",
                    f"row {row} has {len(instance)} values; the model takes {len(features)} "
                    f"in this order: {features}",
                )
            for name, value in zip(features, instance, strict=True):
                columns[name].append(_scalar(value, name, row))
        else:
            raise RequestError(
                "instances",
                "wrong_type",
                f"row {row} must be a list of values or an object keyed by feature name",
            )
    return ParsedRequest(columns, len(instances), _want_probabilities(body))


def _flatten(data: Any, name: str) -> list[Any]:
    """Row-major flattening of nested lists; scalars stay scalars."""
    if not isinstance(data, list):
        raise RequestError(f"inputs.{name}.data", "wrong_type", f"input {name!r}: 'data' must be a list")
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _v2_tensor(tensor: Any, index: int) -> tuple[str, list[int], list[Any]]:
    if not isinstance(tensor, dict):
        raise RequestError(f"inputs[{index}]", "wrong_type", "each input must be a JSON object")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise RequestError(f"inputs[{index}].name", "missing_field", "each input needs a string 'name'")
    datatype = tensor.get("datatype")
    if datatype not in V2_DATATYPES:
        raise RequestError(
            f"inputs.{name}.datatype",
            "unknown_datatype",
            f"input {name!r}: datatype {datatype!r} is not one of {sorted(V2_DATATYPES)}",
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise RequestError(
            f"inputs.{name}.shape",
            "wrong_type",
            f"input {name!r}: 'shape' must be a list of non-negative ints",
        )
    params = tensor.get("parameters")
    _check_parameters(params, f"inputs.{name}.parameters")
    if datatype == "FP16" and not (params and "binary_data_size" in params):
        # JSON has no 16-bit float; KServe refuses it too (infer_type.py from_inference_request)
        raise RequestError(
            f"inputs.{name}.datatype",
            "fp16_json",
            f"input {name!r}: FP16 data cannot be sent as JSON; send it as binary (binary_data_size)",
        )
    if "data" not in tensor:
        raise RequestError(f"inputs.{name}.data", "missing_field", f"input {name!r} has no 'data'")
    data = _flatten(tensor["data"], name)
    if math.prod(shape) != len(data):
        raise RequestError(
            f"inputs.{name}.shape",
            "shape_mismatch",
            f"input {name!r}: shape {shape} holds {math.prod(shape)} values but 'data' has {len(data)}",
        )
    return name, shape, data


def parse_v2(body: Any, features: list[str], max_rows: int) -> ParsedRequest:
    """Parse a v2 ``/infer`` body into columns; raise RequestError on any structural mistake."""
    if not isinstance(body, dict):
        raise RequestError("body", "wrong_type", "the request body must be a JSON object with 'inputs'")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs", "missing_field", "the request body needs a non-empty 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError("id", "wrong_type", "'id' must be a string")
    _check_parameters(body.get("parameters"), "parameters")
    # v2 ``outputs`` is checked, and naming "probability" adds it; "predict" is always returned
    # (the payload log pairs every answer by its predictions)
    want = _want_probabilities(body) or PROBABILITY_OUTPUT in _requested_outputs(body.get("outputs"))
    tensors = [_v2_tensor(tensor, i) for i, tensor in enumerate(inputs)]
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][0] not in features:
        columns, rows = _from_matrix(*tensors[0], features=features)
    else:
        columns, rows = _from_columns(tensors, features)
    _check_rows(rows, max_rows, "inputs")
    for name, values in columns.items():
        for row, value in enumerate(values):
            values[row] = _scalar(value, name, row)
    return ParsedRequest(columns, rows, want, request_id)


def _requested_outputs(outputs: Any) -> list[str]:
    if outputs is None:
        return []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise RequestError("outputs", "wrong_type", "'outputs' must be a list of objects with a 'name'")
    for output in outputs:
        _check_parameters(output.get("parameters"), f"outputs.{output['name']}.parameters")
    names = [o["name"] for o in outputs]
    unknown = [n for n in names if n not in (PREDICTION_OUTPUT, PROBABILITY_OUTPUT)]
    if unknown:
        raise RequestError(
            "outputs",
            "unknown_output",
            f"unknown output(s) {unknown}; this model returns {PREDICTION_OUTPUT!r} and {PROBABILITY_OUTPUT!r}",
        )
    return names


def _from_matrix(
    name: str, shape: list[int], data: list[Any], features: list[str]
) -> tuple[dict[str, list[Any]], int]:
    rows, width = shape
    if width != len(features):
        raise RequestError(
            f"inputs.{name}.shape",
            "wrong_length",
            f"input {name!r}: a 2-D tensor needs {len(features)} columns in this order: {features}; got {width}",
        )
    return {feature: data[j::width] for j, feature in enumerate(features)}, rows


def _from_columns(
    tensors: list[tuple[str, list[int], list[Any]]], features: list[str]
) -> tuple[dict[str, list[Any]], int]:
    known = set(features)
    seen: dict[str, list[Any]] = {}
    for name, shape, data in tensors:
        if name not in known:
            raise RequestError(
                name,
                "unknown_feature",
                f"unknown input {name!r}; the model takes one input per feature: {features}",
            )
        if name in seen:
            raise RequestError(name, "duplicate_input", f"input {name!r} is given twice")
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(
                f"inputs.{name}.shape",
                "wrong_shape",
                f"input {name!r}: shape must be [n] or [n, 1], got {shape}",
            )
        seen[name] = data
    missing = [f for f in features if f not in seen]
    if missing:
        raise RequestError(missing[0], "missing_feature", f"missing input(s) {missing}")
    lengths = {len(values) for values in seen.values()}
    if len(lengths) != 1:
        raise RequestError(
            "inputs", "shape_mismatch", f"inputs hold different numbers of rows: {sorted(lengths)}"
        )
    return {f: list(seen[f]) for f in features}, lengths.pop()


def v1_response(
    predictions: list[int], probabilities: list[float] | None, model_name: str, model_version: str
) -> dict[str, Any]:
    """The v1 answer: predictions (and probabilities when asked), with the model's name and version."""
    body: dict[str, Any] = {
        "predictions": predictions,
        "model_name": model_name,
        "model_version": model_version,
    }
    if probabilities is not None:
        body["probabilities"] = probabilities
    return body


def v2_response(
    predictions: list[int],
    probabilities: list[float] | None,
    model_name: str,
    model_version: str,
    request_id: str,
) -> dict[str, Any]:
    """The v2 answer: one output tensor per requested quantity, with the model's name and version."""
    rows = len(predictions)
    outputs = [{"name": PREDICTION_OUTPUT, "datatype": "INT64", "shape": [rows], "data": predictions}]
    if probabilities is not None:
        outputs.append(
            {"name": PROBABILITY_OUTPUT, "datatype": "FP64", "shape": [rows], "data": probabilities}
        )
    return {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": outputs}


def parse_unnamed(body: Any, max_rows: int) -> ParsedRequest:
    """Parse a v1 or v2 body when the model's contract is not known (the payload sink's fallback).

    Columns keep the names the body gives (v1 objects, v2 per-feature tensors); positional values
    (v1 lists, a v2 ``[n, F]`` tensor) become ``input_<i>`` in order, for a reader that knows the
    contract to rename later. Structural mistakes raise RequestError as in ``parse_v1``/``parse_v2``.
    """
    if not isinstance(body, dict):
        raise RequestError("body", "wrong_type", "the request body must be a JSON object")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise RequestError("instances", "wrong_type", "'instances' must be a list of rows")
        _check_rows(len(instances), max_rows, "instances")
        records: list[dict[str, Any]] = []
        for row, instance in enumerate(instances):
            if isinstance(instance, dict):
                records.append({str(k): _scalar(v, str(k), row) for k, v in instance.items()})
            elif isinstance(instance, list):
                records.append({f"input_{i}": _scalar(v, f"input_{i}", row) for i, v in enumerate(instance)})
            else:
                raise RequestError("instances", "wrong_type", f"row {row} must be a list or an object")
        names = list(dict.fromkeys(name for record in records for name in record))
        columns = {name: [record.get(name) for record in records] for name in names}
        return ParsedRequest(columns, len(instances), _want_probabilities(body))
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(
            "inputs", "missing_field", "the request body needs 'instances' or a non-empty 'inputs'"
        )
    tensors = [_v2_tensor(tensor, i) for i, tensor in enumerate(inputs)]
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][1][1] != 1:
        name, shape, data = tensors[0]
        positional = [f"input_{j}" for j in range(shape[1])]
        columns, rows = _from_matrix(name, shape, data, positional)
    else:
        columns, rows = _from_columns(tensors, [name for name, _, _ in tensors])
    _check_rows(rows, max_rows, "inputs")
    for name, values in columns.items():
        for row, value in enumerate(values):
            values[row] = _scalar(value, name, row)
    return ParsedRequest(columns, rows, _want_probabilities(body))
