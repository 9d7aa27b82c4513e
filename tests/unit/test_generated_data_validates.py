"""Generated data and its contract agree: validation counts bad rows one by one, every drift
scenario stays inside the contract, and the docs state the contract's feature counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlstack.core.generator import SCENARIOS, generate, loan_contract
from mlstack.core.validation import validate

ROOT = Path(__file__).resolve().parents[2]


def test_validate_counts_only_the_bad_row():
    """One text cell in a numeric CSV column is one bad row, not 200."""
    frame = generate(200, seed=3)
    frame["credit_score"] = frame["credit_score"].astype(object)
    frame.loc[17, "credit_score"] = "n/a"
    report = validate(frame, loan_contract())
    bad = [v for v in report.violations if v.column == "credit_score"]
    assert [(v.rule, v.count) for v in bad] == [("not_a_number", 1)]
    assert not report.passed  # text in a numeric column still stops a training run


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_strength_4_stays_inside_its_own_contract(scenario):
    """At --strength 4 every scenario stays inside the contract (no negative incomes, no crash)."""
    report = validate(generate(3000, seed=5, scenario=scenario, strength=4.0), loan_contract())
    assert [v for v in report.violations if v.column != "default"] == []


def test_feature_counts_agree_with_the_contract():
    """The training guide and `data generate --help` state the contract's 18 features (14 + 4)."""
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
