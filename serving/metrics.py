"""Prometheus metrics of the predictor: KServe's latency histograms plus rejected requests by reason.

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

__all__ = ["PRE_HIST_TIME", "PREDICT_HIST_TIME", "POST_HIST_TIME", "REJECTED", "PREDICTED_ROWS"]
