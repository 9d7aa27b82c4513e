"""Every wait of the e2e, in one place: the workflow's e2e step is budgeted from their sum.

``seconds`` is the longest one wait may take before the test fails saying what it waited for;
``times`` is how often the e2e runs it. tests/unit/test_e2e_workflow.py sums ``seconds x times``
and checks the workflow's ``timeout-minutes``. Single calls (one kubectl command, 120 s; one HTTP
request, 30 s) are not waits and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wait:
    seconds: int
    times: int


# every Deployment in the cluster Available, then every StatefulSet of ours rolled out (a check:
# `make kind-up` and `make deploy` waited for them already)
PLATFORM_AVAILABLE = Wait(120, 1)
STATEFULSETS = Wait(120, 1)
# each of the two pipeline runs: training data into S3, the submit, the run to success
DATA_UPLOAD = Wait(120, 2)
PIPELINE_SUBMIT = Wait(120, 2)
PIPELINE_RUN = Wait(1200, 2)
ISVC_READY = Wait(480, 1)
# canary at 10 %, then at 50 %; the promotion; traffic on one version after promote and rollback
SPLIT = Wait(480, 2)
PROMOTED = Wait(480, 1)
TRAFFIC_MOVED = Wait(300, 2)
# payload rows in S3 after the canary traffic and before the drift job; request series in Prometheus
PAYLOADS = Wait(180, 2)
SERIES = Wait(300, 1)
# `kubectl model` canary, analyze, promote, canary, rollback
KUBECTL_MODEL = Wait(120, 5)
# `kubectl port-forward` until the Service answers: 2 per pipeline run, 6 MLflow lookups, 5 plugin
# calls, S3 for payloads (2) and analysis, Prometheus (2), the Pushgateway
PORT_FORWARD = Wait(30, 21)
DRIFT_JOB = Wait(600, 1)

ALL: dict[str, Wait] = {name: value for name, value in globals().items() if isinstance(value, Wait)}


def total_seconds() -> int:
    return sum(wait.seconds * wait.times for wait in ALL.values())
