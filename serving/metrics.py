"""Prometheus metrics of the predictor: KServe's latency histograms, rejected requests by reason and
(lean server) inference responses by HTTP status code.

The histograms are KServe's own objects (``request_predict_seconds`` and friends, label
``model_name``), so dashboards built for KServe work whichever server answers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from prometheus_client import Counter


def _kserve_metrics() -> ModuleType:
    """KServe's own ``kserve/metrics.py`` module, without running the ``kserve`` package's ``__init__``.

    That ``__init__`` imports the whole model server, FastAPI and the Kubernetes client (about a
    second of the lean server's start-up, which every scale-from-zero pays). The module is
    registered under its real name, so when the stock server imports ``kserve`` later,
    ``kserve/model.py``'s ``from .metrics import ...`` finds it in ``sys.modules`` and the
    histograms are registered once (kserve==0.21.0: nothing else imports ``kserve.metrics``).
    """
    if "kserve.metrics" in sys.modules:
        return sys.modules["kserve.metrics"]
    package = importlib.util.find_spec("kserve")  # a top-level spec: finds, does not import
    if package is None or package.origin is None:
        raise ImportError("kserve is not installed")
    spec = importlib.util.spec_from_file_location(
        "kserve.metrics", Path(package.origin).parent / "metrics.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kserve.metrics"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["kserve.metrics"]
        raise
    return module


_kserve = _kserve_metrics()
PRE_HIST_TIME = _kserve.PRE_HIST_TIME
PREDICT_HIST_TIME = _kserve.PREDICT_HIST_TIME
POST_HIST_TIME = _kserve.POST_HIST_TIME

REJECTED = Counter(
    "mlstack_rejected_requests",
    "Inference requests answered with a 4xx, by protocol and rule broken",
    ["model_name", "protocol", "reason"],
)
PREDICTED_ROWS = Counter(
    "mlstack_predicted_rows",
    "Rows scored, by model version and engine (onnx = the compiled artifact, sklearn)",
    ["model_name", "model_version", "protocol", "engine"],
)

# Counted by the lean server (serving/app.py) for every inference request it answers, 5xx included.
# On a cluster the queue-proxy counts requests per revision; this series is what the laptop demo's
# Prometheus reads for the canary's request count and 5xx rate (no queue-proxy there).
RESPONSES = Counter(
    "mlstack_inference_responses",
    "Inference requests answered by the lean server, by model version, protocol and HTTP status code",
    ["model_name", "model_version", "protocol", "code"],
)

__all__ = [
    "PRE_HIST_TIME",
    "PREDICT_HIST_TIME",
    "POST_HIST_TIME",
    "REJECTED",
    "PREDICTED_ROWS",
    "RESPONSES",
]
