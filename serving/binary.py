"""The binary tensor data extension of the Open Inference Protocol (v2 REST): pure functions.

A binary request is a JSON header followed by raw tensor bytes; the header's length is in the
``Inference-Header-Content-Length`` HTTP header, and each input sent as bytes carries
``"parameters": {"binary_data_size": N}`` instead of ``data``. Bytes are little-endian, row-major,
without padding; BOOL is one byte (0 or 1); a BYTES element is a 4-byte little-endian length and
the bytes. Outputs come back as bytes when the request says ``"parameters": {"binary_data_output":
true}`` or an output says ``"parameters": {"binary_data": true}``; the answer then carries the
same header and each such output its ``binary_data_size``.

Read at kserve==0.21.0 ``kserve/protocol/infer_type.py`` (``InferRequest.from_bytes``,
``InferResponse.to_rest``, ``deserialize_bytes_tensor``, ``use_binary_outputs``),
``kserve/constants/constants.py`` (``INFERENCE_CONTENT_LENGTH_HEADER``) and Triton's
``docs/protocol/extension_binary_data.md``.

``decode`` turns a binary body into the JSON body it stands for (each binary input gets its
``data`` list), so ``parse_v2`` judges both encodings with the same rules. Every mistake a client
can make in the framing is a ``RequestError`` (HTTP 400), never a crash.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import orjson

from mlstack.serving.protocol import RequestError, load_json

HEADER = "inference-header-content-length"
OCTET_STREAM = "application/octet-stream"
# the fixed-size datatypes as NumPy little-endian dtypes; BYTES is length-prefixed (below)
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("|u1"),
    "UINT8": np.dtype("|u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("|i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")


def header_length(value: str | None, body_size: int) -> int | None:
    """The JSON header's length from ``Inference-Header-Content-Length``; None when not sent."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise RequestError(
            HEADER, "invalid_header", f"{HEADER} must be a non-negative decimal integer, got {value[:40]!r}"
        )
    length = int(text)
    if length > body_size:
        raise RequestError(
            HEADER, "header_too_long", f"{HEADER} is {length} but the body holds only {body_size} bytes"
        )
    return length


def _json_header(raw: bytes, length: int) -> dict[str, Any]:
    try:
        body = orjson.loads(raw[:length])
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            HEADER, "invalid_json", f"the first {length} bytes ({HEADER}) are not a JSON object: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise RequestError("body", "wrong_type", "the JSON header must be an object with 'inputs'")
    return body


def _size_of(tensor: dict[str, Any], where: str) -> int | None:
    params = tensor.get("parameters")
    if params is None:
        return None
    if not isinstance(params, dict):
        raise RequestError(
            f"{where}.parameters", "wrong_type", f"{where}: 'parameters' must be a JSON object"
        )
    size = params.get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RequestError(
            f"{where}.parameters.binary_data_size",
            "wrong_type",
            f"{where}: 'binary_data_size' must be a non-negative integer",
        )
    if "data" in tensor:
        raise RequestError(
            f"{where}.data", "ambiguous_data", f"{where} has both 'data' and 'binary_data_size'; send one"
        )
    return size


def _strings(chunk: bytes, where: str) -> list[str]:
    values, offset = [], 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise RequestError(
                where, "truncated_bytes", f"{where}: a BYTES element's 4-byte length is cut off"
            )
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + size > len(chunk):
            raise RequestError(
                where, "truncated_bytes", f"{where}: a BYTES element runs past its binary_data_size"
            )
        try:
            values.append(chunk[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError(where, "wrong_type", f"{where}: a BYTES element is not UTF-8 text") from None
        offset += size
    return values


def _values(chunk: bytes, datatype: Any, where: str) -> list[Any]:
    if datatype == "BYTES":
        return _strings(chunk, where)
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:  # parse_v2 names the datatype rule; the bytes cannot be read without it
        raise RequestError(
            f"{where}.datatype",
            "unknown_datatype",
            f"{where}: datatype {datatype!r} cannot be sent as binary",
        )
    if len(chunk) % dtype.itemsize:
        raise RequestError(
            f"{where}.parameters.binary_data_size",
            "binary_size_mismatch",
            f"{where}: {len(chunk)} bytes is not a whole number of {datatype} values ({dtype.itemsize} bytes each)",
        )
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL":
        if array.size and array.max() > 1:
            raise RequestError(where, "wrong_type", f"{where}: a BOOL byte must be 0 or 1")
        array = array.astype(bool)
    values: list[Any] = array.tolist()  # numpy types tolist() as Any
    return values


def decode(raw: bytes, length: int, key: str = "inputs") -> dict[str, Any]:
    """The JSON body a binary request stands for: each ``binary_data_size`` input gets its ``data``.

    ``key="outputs"`` reads a binary answer the same way (the payload sink stores both halves).
    """
    body = _json_header(raw, length)
    inputs = body.get(key)
    if not isinstance(inputs, list):
        if length != len(raw):
            raise RequestError(
                "body", "binary_size_mismatch", f"binary data follows a header without '{key}'"
            )
        return body  # parse_v2 names what is missing
    offset = length
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            continue  # parse_v2 refuses it
        name = tensor.get("name")
        where = f"{key}.{name}" if isinstance(name, str) else f"{key}[{index}]"
        size = _size_of(tensor, where)
        if size is None:
            continue
        if offset + size > len(raw):
            raise RequestError(
                f"{where}.parameters.binary_data_size",
                "binary_size_mismatch",
                f"{where}: binary_data_size {size} runs past the end of the body ({len(raw) - offset} bytes left)",
            )
        tensor["data"] = _values(raw[offset : offset + size], tensor.get("datatype"), where)
        offset += size
    if offset != len(raw):
        raise RequestError(
            "body",
            "binary_size_mismatch",
            f"{len(raw) - offset} bytes after the tensors that no input's binary_data_size accounts for",
        )
    return body


def decode_v2(raw: bytes, header_value: str | None) -> Any:
    """A v2 body as the JSON it stands for: binary when ``Inference-Header-Content-Length`` is sent."""
    length = header_length(header_value, len(raw))
    if length is not None:
        return decode(raw, length)
    body = load_json(raw)
    inputs = body.get("inputs") if isinstance(body, dict) else None
    for index, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        if isinstance(tensor, dict) and isinstance(tensor.get("parameters"), dict):
            if "binary_data_size" in tensor["parameters"]:
                raise RequestError(
                    f"inputs[{index}].parameters.binary_data_size",
                    "missing_header",
                    f"an input sent as binary needs the {HEADER} header (the JSON part's length)",
                )
    return body


def binary_outputs(body: dict[str, Any]) -> set[str]:
    """Names of the outputs to answer as bytes (``binary_data_output``, each output's ``binary_data``)."""
    params = body.get("parameters")
    every = params.get("binary_data_output", False) if isinstance(params, dict) else False
    if not isinstance(every, bool):
        raise RequestError(
            "parameters.binary_data_output", "wrong_type", "'binary_data_output' must be true or false"
        )
    chosen = {"predict", "probability"} if every else set()
    outputs = body.get("outputs")
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict) or not isinstance(output.get("parameters"), dict):
            continue
        flag = output["parameters"].get("binary_data")
        if flag is None:
            continue
        if not isinstance(flag, bool):
            raise RequestError(
                f"outputs.{output.get('name')}.parameters.binary_data",
                "wrong_type",
                "'binary_data' must be true or false",
            )
        name = str(output.get("name"))
        if flag:
            chosen.add(name)
        else:
            chosen.discard(name)
    return chosen


def encode_response(answer: dict[str, Any], binary: set[str]) -> tuple[bytes, int | None]:
    """(body, JSON header length or None): the outputs named in ``binary`` as raw little-endian bytes."""
    chunks = []
    for output in answer["outputs"]:
        if output["name"] not in binary:
            continue
        dtype = DTYPES[output["datatype"]]
        data = np.asarray(output.pop("data"), dtype=dtype).tobytes()
        output["parameters"] = {"binary_data_size": len(data)}
        chunks.append(data)
    header = orjson.dumps(answer)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def header_end(raw: bytes) -> int | None:
    """Where the leading JSON object of ``raw`` ends, for a reader that was not sent the header length.

    The KServe logger forwards a request's body but not its headers (kserve@v0.20.0
    ``pkg/logger/handler.go``: only ``metadataHeaders`` travel, in ``ce-metadata``), so the payload
    sink finds the split itself. Latin-1 maps each byte to one character, so the character index
    where the JSON ends is the byte index.
    """
    if not raw.startswith(b"{"):
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(raw.decode("latin-1"))
    except ValueError:
        return None
    return end
