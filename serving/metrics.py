"""Prometheus metrics of the predictor: KServe's latency histograms, rejected requests by reason and
(lean server) inference responses by HTTP status code.

The histograms are KServe's own objects (``request_predict_seconds`` and friends, label
``model_name``), so dashboards built for KServe work whichever server answers.
"""

from __future__ import annotations

from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME
from prometheus_client import Counter

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
