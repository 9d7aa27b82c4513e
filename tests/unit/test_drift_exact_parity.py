"""Issue 24 goal 3: the drift job's verdicts on every row equal stock Evidently's DataDriftPreset.

Stock = ``Report([DataDriftPreset(drift_share=...)])`` on the very frames the job judges, column
types from the dtypes, methods chosen by Evidently itself. The job pins its methods from the
reference and computes the statistics on every row itself (``monitoring/drift/stats.py``); on the
generator's five scenarios every feature verdict, every score and the dataset verdict must match.
"""

from __future__ import annotations

import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from mlstack.core.generator import SCENARIOS, generate, loan_contract
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift.inputs import contract_from_frame
from mlstack.monitoring.drift.job import evaluate
from mlstack.monitoring.drift.report import display_name

FEATURES = loan_contract().feature_names


def _stock(reference: pd.DataFrame, current: pd.DataFrame, drift_share: float) -> dict:
    numeric = [c for c in reference.columns if pd.api.types.is_numeric_dtype(reference[c])]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[c for c in reference.columns if c not in numeric]
    )
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    verdicts, share = {}, None
    for item in snapshot.dict()["metrics"]:
        config = item["config"]
        if config["type"].endswith(":ValueDrift"):
            verdicts[config["column"]] = (config["method"], float(item["value"]), float(config["threshold"]))
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(item["value"]["share"])
    return {"features": verdicts, "share": share}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate(5000, seed=3)[FEATURES]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_verdict_equals_stock_data_drift_preset(reference, scenario):
    # more rows than the 20,000 the job used to sample: a sampled statistic differs from stock's
    current = generate(30_000, seed=7, scenario=scenario)[FEATURES]
    config = DriftConfig()
    stock = _stock(reference, current, config.drift_share)
    ours = evaluate("loan", "1", reference, current, contract_from_frame(reference, "loan"), config).result
    assert set(stock["features"]) == set(ours["features"]) == set(FEATURES)
    for name, (method, score, threshold) in stock["features"].items():
        entry = ours["features"][name]
        kind = "num" if pd.api.types.is_numeric_dtype(reference[name]) else "cat"
        # the stock snapshot names the method Evidently resolved by its display name
        assert (display_name(entry["method"], kind), entry["threshold"]) == (method, threshold), name
        assert entry["score"] == pytest.approx(score, rel=1e-9, abs=1e-12), name
        assert entry["drifted"] == (score >= threshold), name
    assert ours["drifted_share"] == pytest.approx(stock["share"])
    assert ours["data_quality"]["distribution_drift"] == (stock["share"] >= config.drift_share)
