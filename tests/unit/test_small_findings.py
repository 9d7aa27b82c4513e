"""Findings 5 (root cause, retry) and 10 of issue 15, each checked against literal expectations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlstack.core.generator import SCENARIOS, generate, loan_contract
from mlstack.core.validation import validate

ROOT = Path(__file__).resolve().parents[2]


def test_validate_counts_only_the_bad_row():
    """On main one text cell in a numeric CSV column made all 200 rows bad."""
    frame = generate(200, seed=3)
    frame["credit_score"] = frame["credit_score"].astype(object)
    frame.loc[17, "credit_score"] = "n/a"
    report = validate(frame, loan_contract())
    bad = [v for v in report.violations if v.column == "credit_score"]
    assert [(v.rule, v.count) for v in bad] == [("not_a_number", 1)]
    assert not report.passed  # text in a numeric column still stops a training run


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_strength_4_stays_inside_its_own_contract(scenario):
    """On main covariate_shift at --strength 4 wrote negative incomes; category_shift crashed."""
    report = validate(generate(3000, seed=5, scenario=scenario, strength=4.0), loan_contract())
    assert [v for v in report.violations if v.column != "default"] == []


def test_feature_counts_agree_with_the_contract():
    """README said 13+4, --help said 17; the contract has 18 (14 numeric, 4 categorical)."""
    contract = loan_contract()
    numeric, categorical = len(contract.numeric_features), len(contract.categorical_features)
    readme = (ROOT / "docs" / "training.md").read_text()
    stated = re.search(r"loan-default table \((\d+) numeric and (\d+) categorical", readme)
    assert stated and (int(stated[1]), int(stated[2])) == (numeric, categorical)
    from mlstack.cli.data import _GENERATE_HELP

    assert (
        f"({numeric + categorical} features: {numeric} numeric, {categorical} categorical" in _GENERATE_HELP
    )
    assert (numeric, categorical) == (14, 4)


def test_failure_line_is_the_root_cause():
    """On main a failed step printed only "Inner task failed: 'train-op'"."""
    from mlstack.pipelines.local import failure_line

    log = "\n".join(
        [
            "Executing task 'train-op'",
            "Traceback (most recent call last):",
            '  File "/x/sklearn/model_selection/_split.py", line 2300, in _iter_indices',
            "ValueError: The least populated class in y has only 1 member, which is too few.",
            "Task 'train-op' finished with status FAILURE",
        ]
    )
    line = failure_line(
        "Pipeline 'training' finished with status FAILURE. Inner task failed: 'train-op'.",
        log,
        Path("/h/kfp/last-run.log"),
    )
    assert line == (
        "step train-op failed: ValueError: The least populated class in y has only 1 member, "
        "which is too few. (full log: /h/kfp/last-run.log)"
    )


def test_train_is_not_retried():
    """A deterministic step retried repeats its failure; on main train had num_retries=1."""
    import yaml

    from mlstack.pipelines.training import compile_training

    out = compile_training(Path(__import__("tempfile").mkdtemp()))
    spec = next(yaml.safe_load_all(out.read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    assert "retryPolicy" not in tasks["train-op"]


def test_both_clis_have_version():
    import subprocess
    import sys

    for module in ("mlstack.cli.main", "mlstack.cli.kubectl_model"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and done.stdout.strip() == "mlstack 0.1.0", (module, done)
