"""The one front door of both servers: raw request bytes -> parsed columns, or the client's mistake.

The lean app calls it for every inference request; the stock ``kserve.ModelServer`` path calls it
from ``request_guard`` before KServe sees the body, so a malformed body gets the same 400 (same
``field`` and ``rule``) whichever server answers, and never reaches code that would answer 500.
"""

from __future__ import annotations

from mlstack.serving import binary
from mlstack.serving.protocol import ParsedRequest, ProtocolName, load_json, parse_v1, parse_v2


def parse_request(
    protocol: ProtocolName, raw: bytes, inference_header: str | None, features: list[str], max_rows: int
) -> tuple[ParsedRequest, set[str]]:
    """(the request's columns, outputs to answer as binary); RequestError on any client mistake."""
    if protocol == "v2":
        body = binary.decode_v2(raw, inference_header)
        parsed = parse_v2(body, features, max_rows)
        return parsed, binary.binary_outputs(body)
    return parse_v1(load_json(raw), features, max_rows), set()
