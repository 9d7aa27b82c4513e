"""The kind workflow's budget comes from the waits it runs; a failure stops it; diagnostics always run.

Each step's ``timeout-minutes`` must cover the sum of its own waits — the Makefile's (read from
``make -n``: ``--timeout``, ``--wait``, wait-webhook.sh deadlines, retry.sh pauses) and the e2e's
(tests/e2e/waits.py) — and the job's must cover the sum of its steps', so a step times out with its
own message before GitHub cancels the job. GitHub cancels any job at 360 minutes
(docs.github.com "Usage limits": job execution time; not verified here).
"""

from __future__ import annotations

import math
import re
import subprocess

import pytest
import yaml

from tests.e2e import waits
from tests.fixtures.cluster import ROOT

GITHUB_JOB_LIMIT_MINUTES = 360


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())


def _step(workflow: dict, command: str) -> dict:
    (step,) = [s for s in workflow["jobs"]["e2e"]["steps"] if s.get("run", "").startswith(command)]
    return step


def make_wait_seconds(target: str) -> int:
    """The longest the recipe of ``target`` (and the makes it runs) may wait, from ``make -n``."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", target, "KUBECTL=kubectl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    total = 0
    for line in dry.stdout.splitlines():
        for value, unit in re.findall(r"--(?:timeout|wait)[= ](\d+)(s|m)\b", line):
            total += int(value) * (60 if unit == "m" else 1)
        if match := re.search(r"wait-webhook\.sh \S+ \S+ (\d+)", line):
            total += int(match.group(1))
        if match := re.search(r"retry\.sh (\d+) (\d+) ", line):
            total += (int(match.group(1)) - 1) * int(match.group(2))
    return total


def test_make_waits_are_read():
    """The parser sees the platform's waits (so a budget check below cannot pass on an empty sum)."""
    assert make_wait_seconds("platform") >= 7 * 600 + 900 + 900
    assert make_wait_seconds("deploy") == 15 * 60


@pytest.mark.parametrize(
    ("command", "seconds"),
    [
        ("make kind-up", lambda: make_wait_seconds("kind-up")),
        ("make deploy", lambda: make_wait_seconds("deploy")),
        ("make e2e", waits.total_seconds),
    ],
)
def test_each_step_outlasts_its_own_waits(workflow, command, seconds):
    needed = math.ceil(seconds() / 60)
    assert _step(workflow, command)["timeout-minutes"] >= needed, (
        f"{command}: its waits add up to {needed} min"
    )


def test_the_job_outlasts_its_steps_and_fits_githubs_limit(workflow):
    job = workflow["jobs"]["e2e"]
    steps = job["steps"]
    assert all("timeout-minutes" in step for step in steps), "every step needs its own budget"
    assert job["timeout-minutes"] >= sum(step["timeout-minutes"] for step in steps)
    assert job["timeout-minutes"] <= GITHUB_JOB_LIMIT_MINUTES


def test_the_budget_written_in_the_workflow_is_the_computed_one():
    text = (ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text()
    assert f"make kind-up   {make_wait_seconds('kind-up') / 60:.1f} min of waits" in text
    assert f"make e2e       {waits.total_seconds() / 60:.1f} min" in text


def test_a_failure_stops_the_job_and_diagnostics_always_run(workflow):
    assert workflow["defaults"]["run"]["shell"] == "bash"  # bash -eo pipefail
    assert "-x" in _step(workflow, "make e2e")["run"].split('"')[1].split()
    steps = workflow["jobs"]["e2e"]["steps"]
    last = _step(workflow, "make e2e")
    after = steps[steps.index(last) + 1 :]
    assert after and all(step.get("if") == "always()" for step in after), "diagnostics must run on always()"
    diagnostics = next(step for step in after if "run" in step)
    assert "kind export logs" in diagnostics["run"] and "get events" in diagnostics["run"]
    upload = next(step for step in after if step.get("uses", "").startswith("actions/upload-artifact"))
    assert "diagnostics/" in upload["with"]["path"]
    # nothing before the e2e runs on always(): a broken step skips the rest
    assert not any(step.get("if") for step in steps[: steps.index(last)])
