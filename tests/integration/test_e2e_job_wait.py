"""The e2e's Job wait returns as soon as a Job fails, with its reason, instead of sitting to its timeout.

Against the session's real kube-apiserver and kube-controller-manager: the Job controller itself
marks a Job ``Failed`` (``activeDeadlineSeconds`` passed: reason ``DeadlineExceeded``; no node runs
its pod, which is what a deadline needs). The ``Complete`` side is written through the status
subresource of a Job whose ``spec.managedBy`` names another controller (so the built-in one leaves
it alone, KEP-4368), with the conditions a finished Job carries in Kubernetes 1.34.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.jobs import wait_for_job
from tests.fixtures.kube_tools import tool

IMAGE = "registry.k8s.io/pause:3.10"


def _job(name: str, **spec) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                }
            },
            **spec,
        },
    }


def test_a_failed_job_is_reported_at_once_with_its_reason(control_plane, namespace):
    control_plane.kubectl(
        "-n", namespace, "apply", "-f", "-", input=json.dumps(_job("deadline", activeDeadlineSeconds=2))
    )
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"job .*/deadline failed \(DeadlineExceeded\)") as failure:
        wait_for_job(
            [str(tool("kubectl"))], namespace, "deadline", timeout=900, env=control_plane.env(), interval=0.5
        )
    # the controller fails it ~2 s in; nothing near the 900 s a `kubectl wait --for=condition=complete` would sit
    assert time.monotonic() - started < 60
    assert "logs:" in str(failure.value) and "events:" in str(failure.value)
    # what the e2e did before: `kubectl wait --for=condition=complete` on the same failed Job sits
    # until its own timeout and says only that
    started = time.monotonic()
    old = control_plane.kubectl(
        "-n", namespace, "wait", "--for=condition=complete", "job/deadline", "--timeout=5s", check=False
    )
    assert old.returncode != 0 and "timed out" in old.stderr and time.monotonic() - started >= 5


def test_a_complete_job_returns(control_plane, namespace):
    control_plane.kubectl(
        "-n", namespace, "apply", "-f", "-", input=json.dumps(_job("done", managedBy="mlstack.test/none"))
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "status": {
            "startTime": now,
            "completionTime": now,
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "lastTransitionTime": now},
            ],
        }
    }
    control_plane.kubectl(
        "-n",
        namespace,
        "patch",
        "job",
        "done",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    outcome = wait_for_job(
        [str(tool("kubectl"))], namespace, "done", timeout=60, env=control_plane.env(), interval=0.5
    )
    assert outcome.succeeded and outcome.seconds < 30


def test_a_job_that_never_finishes_stops_at_the_deadline(control_plane, namespace):
    control_plane.kubectl(
        "-n", namespace, "apply", "-f", "-", input=json.dumps(_job("pending", managedBy="mlstack.test/none"))
    )
    started = time.monotonic()
    with pytest.raises(AssertionError, match="neither completed nor failed in 3s"):
        wait_for_job(
            [str(tool("kubectl"))], namespace, "pending", timeout=3, env=control_plane.env(), interval=0.5
        )
    assert time.monotonic() - started < 30
