"""Wait for a Kubernetes Job to finish either way, and show its logs at once when it failed.

`kubectl wait --for=condition=complete` on a failed Job sits until its timeout (900 s in the e2e)
and says only "timed out". This polls the Job's conditions (``Complete`` / ``Failed``, batch/v1
JobConditionType) and returns as soon as one is True; on ``Failed`` (or the deadline) it raises with
the Job's reason and its pods' logs.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class JobOutcome:
    name: str
    succeeded: bool
    reason: str
    logs: str
    seconds: float


def _run(kubectl: list[str], *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=120, env=env)


def _finished(job: dict) -> tuple[str, str] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"], condition.get("reason") or condition.get("message") or ""
    return None


def logs_of(kubectl: list[str], namespace: str, name: str, env: dict | None = None) -> str:
    """Every container's log of the Job's pods (or why there is none), then its events."""
    pods = _run(kubectl, "-n", namespace, "logs", f"job/{name}", "--all-containers", "--tail=200", env=env)
    events = _run(
        kubectl, "-n", namespace, "get", "events", f"--field-selector=involvedObject.name={name}", env=env
    )
    return f"logs:\n{pods.stdout}{pods.stderr}\nevents:\n{events.stdout}{events.stderr}"


def wait_for_job(
    kubectl: list[str],
    namespace: str,
    name: str,
    timeout: float,
    env: dict | None = None,
    interval: float = 2.0,
) -> JobOutcome:
    """Until the Job is Complete (returned) or Failed (raised at once, with logs); at most ``timeout``."""
    started = time.monotonic()
    while True:
        proc = _run(kubectl, "-n", namespace, "get", "job", name, "-o", "json", env=env)
        if proc.returncode != 0:
            raise AssertionError(f"job {namespace}/{name}: {proc.stderr.strip()}")
        done = _finished(json.loads(proc.stdout))
        waited = time.monotonic() - started
        if done is not None:
            kind, reason = done
            outcome = JobOutcome(
                name, kind == "Complete", reason, logs_of(kubectl, namespace, name, env), waited
            )
            if not outcome.succeeded:
                raise AssertionError(
                    f"job {namespace}/{name} failed ({reason}) after {waited:.0f}s\n{outcome.logs}"
                )
            return outcome
        if waited > timeout:
            raise AssertionError(
                f"job {namespace}/{name} neither completed nor failed in {timeout:.0f}s\n"
                + logs_of(kubectl, namespace, name, env)
            )
        time.sleep(interval)
