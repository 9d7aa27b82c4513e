import numpy as np
import pytest

from mlstack.core.data import fingerprint
from mlstack.core.generator import SCENARIOS, generate, loan_contract
from mlstack.core.validation import validate


def test_same_seed_same_table_other_seed_other_table():
    assert fingerprint(generate(2000, seed=1)) == fingerprint(generate(2000, seed=1))
    assert fingerprint(generate(2000, seed=1)) != fingerprint(generate(2000, seed=2))


def test_shape_matches_the_problem_statement():
    frame = generate(20_000, seed=0)
    contract = loan_contract()
    assert len(contract.numeric_features) >= 10 and len(contract.categorical_features) >= 3
    assert frame[contract.feature_names].isna().any().sum() >= 2  # missing values exist
    assert 0.08 < frame["default"].mean() < 0.20  # imbalanced


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_conforms_to_the_contract(scenario):
    assert validate(generate(5000, seed=9, scenario=scenario), loan_contract(), tolerance=0.0).passed


def test_scenarios_move_what_the_docstring_says():
    base = generate(40_000, seed=11)
    cov = generate(40_000, seed=11, scenario="covariate_shift")
    assert cov["annual_income"].median() / base["annual_income"].median() == pytest.approx(0.70, abs=0.02)
    assert base["credit_score"].mean() - cov["credit_score"].mean() == pytest.approx(40, abs=3)
    cat = generate(40_000, seed=11, scenario="category_shift")
    assert (cat["loan_purpose"] == "small_business").mean() == pytest.approx(0.30, abs=0.01)
    mis = generate(40_000, seed=11, scenario="missingness")
    assert mis["years_employed"].isna().mean() == pytest.approx(0.35, abs=0.01)
    con = generate(40_000, seed=11, scenario="concept_drift")
    # inputs unchanged in distribution, labels not
    assert con["credit_score"].mean() == pytest.approx(base["credit_score"].mean(), abs=1.5)
    corr_base = np.corrcoef(base["debt_to_income"], base["default"])[0, 1]
    corr_con = np.corrcoef(con["debt_to_income"], con["default"])[0, 1]
    assert corr_base > 0 > corr_con


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        generate(10, scenario="earthquake")
