"""The "model call only" ceiling: uvicorn plus the compiled model call on a fixed one-row request.

No parsing, no contract check, no metrics: the body is drained and the ONNX engine scores the same
prepared columns every time. What the predictor could reach if everything but the model call and
HTTP were free (``BENCH_MODEL_DIR`` names the model directory).
"""

import os

import orjson

from bench.serving_bench import rows_of
from mlstack.core.model import load
from mlstack.serving.protocol import parse_v1

HEADERS = [(b"content-type", b"application/json")]


_loaded: dict = {}


def _model():
    """The model and its prepared one-row columns, loaded once (importing this module loads nothing)."""
    if not _loaded:
        model = load(os.environ["BENCH_MODEL_DIR"], name="loans")
        _loaded["model"] = model
        _loaded["columns"] = parse_v1({"instances": rows_of(1)}, model.contract.feature_names, 1).columns
    return _loaded["model"], _loaded["columns"]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":  # load before the first request
        while (message := await receive())["type"] != "lifespan.shutdown":
            _model()
            await send({"type": "lifespan.startup.complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/health":
        body = b"{}"
    else:
        model, columns = _model()
        proba = model.compiled.predict_columns(columns)
        body = orjson.dumps({"predictions": [int(proba[0] >= model.threshold)], "model_version": "1"})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
