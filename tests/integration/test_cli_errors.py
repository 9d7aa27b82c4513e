"""Every command, as a real process: an unknown option, a missing file, a directory where a file is
expected and an unwritable output each give one ``error:`` line and exit 2, never a traceback.

Speed: one driver process per CLI imports it once and forks a process per case
(``cli_error_driver.py``), four at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack.core import data as dataio
from mlstack.core.generator import generate, loan_contract
from tests.conftest import ROOT

UNWRITABLE = "/proc/mlstack-cannot-write-here"  # even root cannot create files in /proc


def _cases(tmp: Path) -> dict[str, list[tuple[str, str, list[str]]]]:
    missing, folder = str(tmp / "missing.yaml"), str(tmp / "folder")
    csv, contract = str(tmp / "t.csv"), str(tmp / "c.yaml")
    manifest = str(tmp / "isvc.yaml")
    mlstack = [
        ("data generate", "unknown", ["data", "generate", "--out", csv, "--bogus"]),
        ("data generate", "directory", ["data", "generate", "--out", folder, "--rows", "5"]),
        ("data generate", "unwritable", ["data", "generate", "--out", f"{UNWRITABLE}/x.csv", "--rows", "5"]),
        ("data infer-contract", "unknown", ["data", "infer-contract", csv, "--target", "default", "--bogus"]),
        (
            "data infer-contract",
            "missing",
            ["data", "infer-contract", str(tmp / "no.csv"), "--target", "default"],
        ),
        ("data infer-contract", "directory", ["data", "infer-contract", folder, "--target", "default"]),
        (
            "data infer-contract",
            "unwritable",
            ["data", "infer-contract", csv, "--target", "default", "--out", f"{UNWRITABLE}/c.yaml"],
        ),
        ("data validate", "unknown", ["data", "validate", csv, "--contract", contract, "--bogus"]),
        ("data validate", "missing", ["data", "validate", csv, "--contract", missing]),
        ("data validate", "directory", ["data", "validate", csv, "--contract", folder]),
        ("pipeline run", "unknown", ["pipeline", "run", "--local", "--bogus"]),
        ("pipeline run", "missing", ["pipeline", "run", "--local", "--config", missing]),
        ("pipeline run", "directory", ["pipeline", "run", "--local", "--contract", folder, "--data", csv]),
        (
            "pipeline run",
            "missing data",
            ["pipeline", "run", "--local", "--contract", contract, "--data", str(tmp / "no.csv")],
        ),
        ("pipeline compile", "unknown", ["pipeline", "compile", "--bogus"]),
        ("pipeline compile", "unwritable", ["pipeline", "compile", "--out", UNWRITABLE]),
        ("pipeline submit", "unknown", ["pipeline", "submit", "--host", "http://127.0.0.1:9", "--bogus"]),
        (
            "pipeline submit",
            "missing",
            ["pipeline", "submit", "--host", "http://127.0.0.1:9", "--config", missing],
        ),
        (
            "pipeline submit",
            "directory",
            ["pipeline", "submit", "--host", "http://127.0.0.1:9", "--contract", folder],
        ),
        ("batch run", "unknown", ["batch", "run", "--local", "--bogus"]),
        (
            "batch run",
            "missing",
            [
                "batch",
                "run",
                "--local",
                "--model",
                "m",
                "--input",
                str(tmp / "no.csv"),
                "--output",
                str(tmp / "o.parquet"),
            ],
        ),
        (
            "batch run",
            "directory",
            [
                "batch",
                "run",
                "--local",
                "--model",
                "m",
                "--input",
                csv,
                "--output",
                str(tmp / "o.parquet"),
                "--config",
                folder,
            ],
        ),
        ("batch submit", "unknown", ["batch", "submit", "--bogus"]),
        (
            "batch submit",
            "missing",
            [
                "batch",
                "submit",
                "--host",
                "http://127.0.0.1:9",
                "--model",
                "m",
                "--input",
                "s3://b/i",
                "--output",
                "s3://b/o",
                "--config",
                missing,
            ],
        ),
        ("serve", "unknown", ["serve", "--name", "loans", "--bogus"]),
        ("serve", "missing", ["serve", "--name", "loans", "--model", str(tmp / "no-model")]),
        ("serve", "directory", ["serve", "--name", "loans", "--config", folder]),
        ("sink", "unknown", ["sink", "--store", str(tmp / "s"), "--bogus"]),
        ("sink", "missing", ["sink", "--store", str(tmp / "s"), "--config", missing]),
        ("drift", "unknown", ["drift", "--bogus"]),
        ("drift", "missing", ["drift", "--reference", str(tmp / "no.parquet"), "--current", csv]),
        ("drift", "directory", ["drift", "--config", folder]),
        ("demo", "unknown", ["demo", "--bogus"]),
        ("demo", "missing", ["demo", "--config", missing]),
        ("config show", "unknown", ["config", "show", "--bogus"]),
        ("config show", "missing", ["config", "show", "--config", missing]),
        ("config show", "directory", ["config", "show", "--config", folder]),
        ("config env", "unknown", ["config", "env", "--bogus"]),
        ("rollout controller", "unknown", ["rollout", "controller", "--bogus"]),
        ("rollout controller", "missing", ["rollout", "controller", "--config", missing]),
        ("rollout controller", "directory", ["rollout", "controller", "--config", folder]),
        ("rollout controller", "no secret", ["rollout", "controller"]),
        ("rollout register-webhook", "unknown", ["rollout", "register-webhook", "--bogus"]),
        ("rollout register-webhook", "no url", ["rollout", "register-webhook"]),
        ("rollout plan", "unknown", ["rollout", "plan", "fraud", "--bogus"]),
        ("rollout plan", "no kubeconfig", ["rollout", "plan", "fraud"]),
    ]
    kubectl = []
    for command in ("status", "canary", "promote", "rollback", "analyze"):
        extra = ["--version", "2", "--storage-uri", "s3://m/2"] if command == "canary" else []
        kubectl += [
            (f"kubectl-model {command}", "unknown", [command, "fraud", "--bogus"]),
            (f"kubectl-model {command}", "missing", [command, "fraud", "-f", missing, *extra]),
            (f"kubectl-model {command}", "directory", [command, "fraud", "-f", folder, *extra]),
            (f"kubectl-model {command}", "bad yaml", [command, "fraud", "-f", manifest, *extra]),
        ]
    return {"mlstack": mlstack, "kubectl-model": kubectl}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-errors")
    (tmp / "folder").mkdir()
    dataio.save_table(generate(30, seed=1), str(tmp / "t.csv"))
    loan_contract().save(tmp / "c.yaml")
    (tmp / "isvc.yaml").write_text("kind: InferenceService\nmetadata: {name: fraud\n  spec: [\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    env |= {"MLSTACK_HOME": str(tmp / "home"), "KUBECONFIG": str(tmp / "no-kubeconfig")}
    results = {}
    procs = {}
    for prog, cases in _cases(tmp).items():
        procs[prog] = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.cli_error_driver", prog],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs[prog].stdin.write(json.dumps([argv for _, _, argv in cases]))
        procs[prog].stdin.close()
    for prog, cases in _cases(tmp).items():
        out = procs[prog].stdout.read()
        assert procs[prog].wait(300) == 0
        for (command, kind, _), outcome in zip(cases, json.loads(out), strict=True):
            results[(command, kind)] = outcome
    assert not (tmp / "home" / "mlflow.db").exists()  # no error case touched a registry
    return results


CASE_IDS = [(c, k) for cases in _cases(Path("/x")).values() for c, k, _ in cases]


@pytest.mark.parametrize(("command", "kind"), CASE_IDS, ids=[f"{c}:{k}" for c, k in CASE_IDS])
def test_one_error_line_and_exit_2(outcomes, command, kind):
    outcome = outcomes[(command, kind)]
    lines = outcome["stderr"].strip().splitlines()
    assert "Traceback" not in outcome["stderr"], outcome["stderr"]
    assert outcome["code"] == 2, outcome
    assert len(lines) >= 1 and lines[-1].startswith("error: "), outcome
    assert all(not line.startswith("error") for line in lines[:-1]), outcome  # exactly one error line
