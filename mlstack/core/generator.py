"""A seeded generator of a realistic loan-default table, with drift scenarios of known size.

14 numeric and 4 categorical features (``loan_contract()``), missing values, ~13.5% positives.
Scenarios and their magnitude at ``strength=1.0`` (shifts scale with ``strength``, income
multiplicatively, shares capped at 95%, so any strength stays inside the contract):

- ``none``: the training distribution.
- ``covariate_shift``: annual_income x0.70, credit_score -40 points, debt_to_income +0.08.
  The label rule is unchanged, so labels follow the moved features.
- ``category_shift``: loan_purpose ``small_business`` 5% -> 30% of rows; employment_type
  ``self_employed`` 10% -> 35%.
- ``missingness``: years_employed missing 5% -> 35%; credit_utilization missing 2% -> 30%.
- ``concept_drift``: feature distributions unchanged; the label rule changes (credit_score's
  effect halves, interest_rate's doubles, debt_to_income's reverses), so only labels
  (accuracy) reveal it, not the inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlstack.core.contract import DataContract, Feature, Target

if TYPE_CHECKING:  # pandas only where a table is made (``generate``): the CLI starts without it
    import pandas as pd

SCENARIOS = ("none", "covariate_shift", "category_shift", "missingness", "concept_drift")

HOME_OWNERSHIP = ["RENT", "OWN", "MORTGAGE", "OTHER"]
LOAN_PURPOSE = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "small_business",
    "car",
    "medical",
    "other",
]
LOAN_PURPOSE_P = [0.38, 0.22, 0.12, 0.05, 0.10, 0.06, 0.07]
EMPLOYMENT = ["salaried", "self_employed", "contract", "retired", "unemployed"]
EMPLOYMENT_P = [0.62, 0.10, 0.14, 0.09, 0.05]
REGIONS = ["north", "south", "east", "west", "central"]
TERMS = np.array([12, 24, 36, 48, 60])


def _shifted(p: list[float], categories: list[str], name: str, share: float) -> np.ndarray:
    """Move probability mass so ``name`` gets ``share``; the others keep their proportions."""
    probabilities = np.asarray(p, dtype=float)
    i = categories.index(name)
    rest = np.delete(probabilities, i)
    rest = rest / rest.sum() * (1 - share)
    return np.insert(rest, i, share)


def generate(rows: int, seed: int = 0, scenario: str = "none", strength: float = 1.0) -> pd.DataFrame:
    """Generate ``rows`` loan applications; same arguments give the same table."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    s = strength if scenario != "none" else 0.0
    cov = s if scenario == "covariate_shift" else 0.0
    cat = s if scenario == "category_shift" else 0.0
    mis = s if scenario == "missingness" else 0.0
    con = s if scenario == "concept_drift" else 0.0

    age = np.clip(rng.normal(41, 11, rows), 21, 75).round().astype(np.int64)
    employment = rng.choice(
        EMPLOYMENT, rows, p=_shifted(EMPLOYMENT_P, EMPLOYMENT, "self_employed", min(0.10 + 0.25 * cat, 0.95))
    )
    purpose = rng.choice(
        LOAN_PURPOSE,
        rows,
        p=_shifted(LOAN_PURPOSE_P, LOAN_PURPOSE, "small_business", min(0.05 + 0.25 * cat, 0.95)),
    )
    home = rng.choice(HOME_OWNERSHIP, rows, p=[0.42, 0.18, 0.37, 0.03])
    region = rng.choice(REGIONS, rows, p=[0.22, 0.24, 0.18, 0.21, 0.15])

    income = np.exp(rng.normal(10.9, 0.45, rows)) * (1 + 0.01 * (age - 40)).clip(0.7, 1.3)
    income = (income * 0.70**cov).round(2)  # multiplicative: x0.70 at 1, never negative
    years_employed = np.clip(rng.gamma(2.0, 3.5, rows), 0, 45).round(1)
    years_employed = np.where(employment == "unemployed", 0.0, years_employed)
    credit_score = np.clip(rng.normal(690 - 40 * cov, 55, rows), 300, 850).round().astype(np.int64)
    dti = np.clip(rng.beta(2.2, 6.5, rows) + 0.08 * cov, 0, 0.95).round(4)
    loan_amount = np.clip(rng.lognormal(9.4, 0.6, rows), 1000, 100000).round(2)
    term = rng.choice(TERMS, rows, p=[0.08, 0.17, 0.45, 0.12, 0.18])
    interest = np.clip(4 + (760 - credit_score) * 0.035 + rng.normal(0, 1.5, rows), 2.5, 30).round(2)
    open_accounts = rng.poisson(7, rows).astype(np.int64)
    late_payments = rng.poisson(np.clip((720 - credit_score) / 120, 0.05, None)).astype(np.int64)
    utilization = np.clip(rng.beta(2, 3.5, rows) + (700 - credit_score) / 2000, 0, 1).round(4)
    delinquency = np.where(late_payments > 0, rng.integers(1, 120, rows), np.nan)
    savings = np.clip(rng.lognormal(8.0, 1.3, rows) * income / 60000, 0, 2e6).round(2)
    dependents = rng.poisson(1.1, rows).astype(np.int64)

    # the label rule: a logistic model of the features (a different one under concept drift)
    z = (
        -2.35
        - (0.022 - 0.011 * con) * (credit_score - 690)
        + (0.09 + 0.09 * con) * (interest - 12)
        + (3.2 - 6.4 * con) * (dti - 0.25)
        - 0.45 * (np.log(income) - 10.9)
        + 0.35 * late_payments
        + 0.9 * (utilization - 0.36)
        + 0.25 * np.log(loan_amount / 12000)
        + 0.006 * (term - 36)
        - 0.02 * (years_employed - 7)
        + np.select(
            [purpose == "small_business", purpose == "medical", purpose == "credit_card"],
            [0.55, 0.3, -0.15],
            0.0,
        )
        + np.select([employment == "unemployed", employment == "self_employed"], [0.8, 0.3], 0.0)
        + np.where(home == "OWN", -0.2, 0.0)
    )
    default = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(np.int64)

    years_employed = np.where(rng.random(rows) < 0.05 + 0.30 * mis, np.nan, years_employed)
    utilization = np.where(rng.random(rows) < 0.02 + 0.28 * mis, np.nan, utilization)

    import pandas as pd

    return pd.DataFrame(
        {
            "application_id": np.arange(1, rows + 1, dtype=np.int64) + seed * 10_000_000,
            "age": age,
            "annual_income": income,
            "years_employed": years_employed,
            "credit_score": credit_score,
            "debt_to_income": dti,
            "loan_amount": loan_amount,
            "loan_term_months": term.astype(np.int64),
            "interest_rate": interest,
            "num_open_accounts": open_accounts,
            "num_late_payments": late_payments,
            "credit_utilization": utilization,
            "months_since_last_delinquency": delinquency,
            "savings_balance": savings,
            "num_dependents": dependents,
            "home_ownership": home,
            "loan_purpose": purpose,
            "employment_type": employment,
            "region": region,
            "default": default,
        }
    )


def loan_contract() -> DataContract:
    """The hand-written contract of the generator's table (ranges are the generator's bounds)."""
    f = Feature
    return DataContract(
        name="loan_default",
        id_column="application_id",
        target=Target(name="default", positive=1),
        features=[
            f(name="age", type="integer", min=18, max=100),
            f(name="annual_income", type="numeric", min=0, max=10_000_000),
            f(name="years_employed", type="numeric", min=0, max=60, nullable=True),
            f(name="credit_score", type="integer", min=300, max=850),
            f(name="debt_to_income", type="numeric", min=0, max=1),
            f(name="loan_amount", type="numeric", min=500, max=200_000),
            f(name="loan_term_months", type="integer", min=6, max=120),
            f(name="interest_rate", type="numeric", min=0, max=40),
            f(name="num_open_accounts", type="integer", min=0, max=100),
            f(name="num_late_payments", type="integer", min=0, max=100),
            f(name="credit_utilization", type="numeric", min=0, max=1, nullable=True),
            f(name="months_since_last_delinquency", type="numeric", min=0, max=600, nullable=True),
            f(name="savings_balance", type="numeric", min=0, max=10_000_000),
            f(name="num_dependents", type="integer", min=0, max=20),
            f(name="home_ownership", type="categorical", categories=HOME_OWNERSHIP),
            f(name="loan_purpose", type="categorical", categories=LOAN_PURPOSE),
            f(name="employment_type", type="categorical", categories=EMPLOYMENT),
            f(name="region", type="categorical", categories=REGIONS),
        ],
    )
