"""The lean server: the same KServe v1 and v2 endpoints as ``kserve.ModelServer``, in a small ASGI app.

Why it exists: on a one-row request the stock server spends most of its time in framework work
(FastAPI dependency resolution, pydantic request and response models, a per-request model
validation step, the access log) rather than in the model. This app parses with orjson, runs the
same ``mlstack.serving.protocol`` + ``mlstack.serving.scoring`` code and KServe's own Prometheus
histograms, and nothing else. Endpoints and bodies match KServe's, so clients, the KServe logger and
probes cannot tell the two apart.

The two inference paths of the served model (``/v1/models/NAME:predict``, ``/v2/models/NAME/infer``)
are answered by raw ASGI (``Inference``): a profile of the Starlette version showed its middleware
stack, router and Request/Response objects taking more of a one-row request than the model did.
Every other path (health, metadata, metrics, other model names, 404/405) goes through Starlette.
"""

from __future__ import annotations

import gc
import logging
from importlib import metadata
from types import FrameType
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlstack.core.model import LoadedModel
from mlstack.serving.batching import Batcher
from mlstack.serving.http_errors import error_handlers, error_response, json_response
from mlstack.serving.inference import Inference
from mlstack.serving.scoring import Scorer

log = logging.getLogger(__name__)

_json = json_response
# no access log (one line per request costs more than a one-row prediction); no WebSocket protocol
# module to import at start (``ws="none"``): the predictor serves HTTP only
UVICORN = {"access_log": False, "log_config": None, "interface": "asgi3", "ws": "none"}


def build_app(
    model: LoadedModel,
    max_batch_rows: int = 1000,
    max_body_bytes: int = 8 * 1024 * 1024,
    batching: tuple[int, float] | None = None,
) -> ASGIApp:
    """An ASGI app serving ``model`` under its name on the v1 and v2 protocols.

    ``batching`` = (max rows, max wait in seconds) turns on adaptive batching (``mlstack.serving.batching``).
    """
    scorer = Scorer(model)
    handlers = error_handlers(log)  # 404, 405 and 500 in the one JSON error shape
    name, version, engine = model.name, model.version, model.engine
    batcher = Batcher(scorer.probabilities, scorer.features, *batching) if batching else None
    v1 = Inference(scorer, "v1", max_batch_rows, max_body_bytes, batcher)
    v2 = Inference(scorer, "v2", max_batch_rows, max_body_bytes, batcher)

    def check_name(request: Request) -> Response | None:
        asked = request.path_params["model_name"]
        if asked != name:
            return error_response(
                404, "model_name", "model_not_found", f"Model with name {asked} does not exist."
            )
        return None

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
        # the binary tensor data extension, named as Triton names it in its server metadata
        body = {
            "name": "mlstack",
            "version": metadata.version("mlstack"),
            "extensions": ["binary_tensor_data"],
        }
        return _json(200, body)

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", live),
        Route("/metrics", prometheus),
        Route("/v1/models", v1_models),
        Route("/v1/models/{model_name}", v1_model),
        Route("/v1/models/{model_name}:predict", v1, methods=["POST"]),
        Route("/v2", v2_server),
        Route("/v2/health/live", v2_live),
        Route("/v2/health/ready", v2_ready),
        Route("/v2/models/{model_name}", v2_model_metadata),
        Route("/v2/models/{model_name}/ready", v2_model_ready),
        Route("/v2/models/{model_name}/infer", v2, methods=["POST"]),
        Route("/v2/models/{model_name}/versions/{model_version}/infer", v2, methods=["POST"]),
    ]
    router = Starlette(routes=routes, exception_handlers=handlers)
    # the served model's two inference paths skip the router (exact match, no path parameters)
    hot = {f"/v1/models/{name}:predict": v1, f"/v2/models/{name}/infer": v2}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = hot.get(scope["path"])
            if endpoint is not None:
                return await endpoint(scope, receive, send)
        return await router(scope, receive, send)

    return app


def run_lean(
    model: LoadedModel,
    host: str,
    port: int,
    workers: int,
    max_batch_rows: int,
    max_body_bytes: int,
    threads: int = 1,
    batching: tuple[int, float] | None = None,
    read_timeout: float = 30.0,
    idle_timeout: int = 65,
) -> None:
    """Serve with uvicorn: access log off; with ``workers > 1`` the processes share the socket."""
    import uvicorn

    from mlstack.serving.scoring import fast_sklearn, import_slow_path_in_background
    from mlstack.serving.timeouts import protocol

    if model.compiled is None:  # scikit-learn answers (the compiled engine has its own thread cap)
        fast_sklearn(threads)
    app = build_app(model, max_batch_rows, max_body_bytes, batching)
    # The tail: a full garbage collection walks every tracked object, ~275k after the old start-up
    # (pandas, scikit-learn, MLflow, KServe) and ~30 ms or more each time; the model and the modules
    # live as long as the process, so they move to the permanent generation and collections scan
    # only what requests allocate.
    gc.freeze()
    import_slow_path_in_background()
    options: dict[str, Any] = UVICORN | {"http": protocol(read_timeout), "timeout_keep_alive": idle_timeout}
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, **options)
        return
    _run_forked(app, host, port, workers, options)


def _run_forked(app: ASGIApp, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Pre-fork ``workers`` processes on one listening socket; the model is loaded once, before the fork."""
    import os
    import signal
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            config = uvicorn.Config(app, **options)
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        children.append(pid)

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)
