"""The lean server: the same KServe v1 and v2 endpoints as ``kserve.ModelServer``, in a small ASGI app.

Why it exists: on a one-row request the stock server spends most of its time in framework work
(FastAPI dependency resolution, pydantic request and response models, a per-request model
validation step, the access log) rather than in the model. This app parses with orjson, runs the
same ``mlstack.serving.protocol`` + ``mlstack.serving.scoring`` code and KServe's own Prometheus histograms, and
nothing else. Endpoints and bodies match KServe's, so clients, the KServe logger and probes cannot
tell the two apart.
"""

from __future__ import annotations

import logging
import time
import uuid
from importlib import metadata

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlstack.core.model import LoadedModel
from mlstack.serving import metrics
from mlstack.serving.batching import Batcher
from mlstack.serving.http_errors import error_handlers, error_response, json_response
from mlstack.serving.predictor import MODEL_ENGINE_HEADER, MODEL_NAME_HEADER, MODEL_VERSION_HEADER
from mlstack.serving.protocol import RequestError, parse_v1, parse_v2, v1_response, v2_response
from mlstack.serving.scoring import Scorer, fast_sklearn

log = logging.getLogger(__name__)
JSON = "application/json"


_json = json_response
_error = error_response


def build_app(
    model: LoadedModel,
    max_batch_rows: int = 1000,
    max_body_bytes: int = 8 * 1024 * 1024,
    batching: tuple[int, float] | None = None,
):
    """An ASGI app serving ``model`` under its name on the v1 and v2 protocols.

    ``batching`` = (max rows, max wait in seconds) turns on adaptive batching (``mlstack.serving.batching``).
    """
    scorer = Scorer(model)
    handlers = error_handlers(log)  # 404, 405 and 500 in the one JSON error shape
    name, version, engine = model.name, model.version, model.engine
    version_headers = {MODEL_NAME_HEADER: name, MODEL_VERSION_HEADER: version, MODEL_ENGINE_HEADER: engine}
    batcher = Batcher(scorer.probabilities, scorer.features, *batching) if batching else None
    labels = {"model_name": name}

    async def read_json(request: Request, protocol: str):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise RequestError("body", "body_too_large", f"request body over {max_body_bytes} bytes")
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise RequestError("body", "body_too_large", f"request body over {max_body_bytes} bytes")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RequestError("body", "invalid_json", f"the request body is not valid JSON: {exc}") from None

    def check_name(request: Request) -> Response | None:
        asked = request.path_params["model_name"]
        if asked != name:
            return _error(404, "model_name", "model_not_found", f"Model with name {asked} does not exist.")
        return None

    for protocol in ("v1", "v2"):  # the series exist from the start, so increase() counts every request
        for code in ("200", "500"):
            metrics.RESPONSES.labels(name, version, protocol, code)

    async def infer(request: Request, protocol: str) -> Response:
        """Answer one inference request and count the answer by status code (an exception counts 500)."""
        try:
            response = await answer(request, protocol)
        except Exception:
            metrics.RESPONSES.labels(name, version, protocol, "500").inc()
            raise
        metrics.RESPONSES.labels(name, version, protocol, str(response.status_code)).inc()
        return response

    async def answer(request: Request, protocol: str) -> Response:
        missing = check_name(request)
        if missing is not None:
            return missing
        started = time.perf_counter()
        try:
            body = await read_json(request, protocol)
            parse = parse_v2 if protocol == "v2" else parse_v1
            parsed = parse(body, scorer.features, max_batch_rows)
            parsed_at = time.perf_counter()
            frame = scorer.check(parsed)
            if batcher is not None and frame is None:
                proba = await batcher.probabilities(parsed.columns, parsed.rows)
            else:
                proba = scorer.probabilities(parsed.columns, frame)
            scored = scorer.answer(proba, parsed.want_probabilities)
        except RequestError as error:
            metrics.REJECTED.labels(name, protocol, error.rule).inc()
            return _json(413 if error.rule == "body_too_large" else 400, error.to_dict())
        scored_at = time.perf_counter()
        metrics.PRE_HIST_TIME.labels(**labels).observe(parsed_at - started)
        metrics.PREDICT_HIST_TIME.labels(**labels).observe(scored_at - parsed_at)
        metrics.PREDICTED_ROWS.labels(name, version, protocol, engine).inc(parsed.rows)
        if protocol == "v2":
            request_id = parsed.request_id or request.headers.get("x-request-id") or uuid.uuid4().hex
            answer = v2_response(scored.predictions, scored.probabilities, name, version, request_id)
        else:
            answer = v1_response(scored.predictions, scored.probabilities, name, version)
        response = _json(200, answer, version_headers)
        metrics.POST_HIST_TIME.labels(**labels).observe(time.perf_counter() - scored_at)
        return response

    async def v1_predict(request: Request) -> Response:
        return await infer(request, "v1")

    async def v2_infer(request: Request) -> Response:
        return await infer(request, "v2")

    async def v1_model(request: Request) -> Response:
        if request.path_params["model_name"].endswith(":predict"):  # GET on the predict path
            return await handlers[405](request, None)
        return check_name(request) or _json(200, {"name": name, "ready": True})

    async def v2_model_ready(request: Request) -> Response:
        return check_name(request) or _json(200, {"name": name, "ready": True})

    async def v2_model_metadata(request: Request) -> Response:
        inputs = [
            {"name": f.name, "datatype": "BYTES" if f.is_categorical else "FP64", "shape": [-1]}
            for f in model.contract.features
        ]
        outputs = [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
        ]
        return check_name(request) or _json(
            200,
            {
                "name": name,
                "versions": [version],
                "platform": f"mlstack-{engine}",
                "inputs": inputs,
                "outputs": outputs,
                # which engine answers and why: the compiled artifact, or scikit-learn and the reason
                "parameters": {"engine": engine, "engine_reason": model.engine_reason},
            },
        )

    async def live(_request: Request) -> Response:
        return _json(200, {"status": "alive"})

    async def v2_live(_request: Request) -> Response:
        return _json(200, {"live": True})

    async def v2_ready(_request: Request) -> Response:
        return _json(200, {"ready": True})

    async def v1_models(_request: Request) -> Response:
        return _json(200, {"models": [name]})

    async def v2_server(_request: Request) -> Response:
        return _json(200, {"name": "mlstack", "version": metadata.version("mlstack"), "extensions": []})

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", live),
        Route("/metrics", prometheus),
        Route("/v1/models", v1_models),
        Route("/v1/models/{model_name}", v1_model),
        Route("/v1/models/{model_name}:predict", v1_predict, methods=["POST"]),
        Route("/v2", v2_server),
        Route("/v2/health/live", v2_live),
        Route("/v2/health/ready", v2_ready),
        Route("/v2/models/{model_name}", v2_model_metadata),
        Route("/v2/models/{model_name}/ready", v2_model_ready),
        Route("/v2/models/{model_name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{model_name}/versions/{model_version}/infer", v2_infer, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers=handlers)


def run_lean(
    model: LoadedModel,
    host: str,
    port: int,
    workers: int,
    max_batch_rows: int,
    max_body_bytes: int,
    threads: int = 1,
    batching: tuple[int, float] | None = None,
) -> None:
    """Serve with uvicorn: access log off; with ``workers > 1`` the processes share the socket."""
    import uvicorn

    fast_sklearn(threads)
    app = build_app(model, max_batch_rows, max_body_bytes, batching)
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, timeout_keep_alive=65)
        return
    _run_forked(app, host, port, workers)


def _run_forked(app, host: str, port: int, workers: int) -> None:
    """Pre-fork ``workers`` processes on one listening socket; the model is loaded once, before the fork."""
    import os
    import signal
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            config = uvicorn.Config(app, access_log=False, log_config=None, timeout_keep_alive=65)
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        children.append(pid)

    def stop(signum, _frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)
