"""A batch output is a drift job ``--current`` window as it is (nightly batches monitored like live traffic).

Runs the real ``mlstack drift`` on the batch output; nothing is skipped (a missing drift job fails).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mlstack.components.batch_score import resolve_spec, run_scoring
from mlstack.core.data import save_table
from mlstack.core.generator import generate


def test_drift_job_reads_batch_output_as_current(registered_loan_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSTACK_HOME", str(registered_loan_model.home))
    reference = save_table(generate(5000, seed=51), str(tmp_path / "reference.parquet"))
    # a CSV input whose incomes fell 30%: the batch output must carry that shift to the drift job
    source = save_table(generate(5000, seed=52, scenario="covariate_shift"), str(tmp_path / "today.csv"))
    summary = run_scoring(*resolve_spec("fraud"), source, str(tmp_path / "scores.parquet"))
    assert summary.scored == 5000
    result = subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "drift", "--model", "fraud", "--reference", reference,
         "--current", summary.output, "--json"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "MLSTACK_HOME": str(registered_loan_model.home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["rows"] == 5000 and report["drift_detected"] is True
    drifted = {name for name, feature in report["features"].items() if feature["drifted"]}
    assert {"annual_income", "credit_score", "debt_to_income"} <= drifted
    assert "region" not in drifted  # untouched by the scenario
