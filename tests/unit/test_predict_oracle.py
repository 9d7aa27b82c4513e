"""``predict`` / ``coerce_features`` against an oracle that does not call them.

The oracle recomputes the logistic-regression probability by hand from the raw rows: median
imputation with missing-value indicators, standard scaling, one-hot encoding with ``__missing__``
for absent categories, then sigmoid(w . x + b) with the fitted weights. Its statistics (medians,
means, standard deviations, categories) come from the training frame, computed here with NumPy;
only the learned weights are read from the model. Input arrives as strings and pandas categoricals,
so the type coercion is what is tested, not bypassed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack.components.train import split, train
from mlstack.core.generator import generate, loan_contract
from mlstack.core.model import predict
from mlstack.core.settings import TrainingConfig


def oracle(
    train_frame: pd.DataFrame, rows: pd.DataFrame, weights: np.ndarray, intercept: float
) -> np.ndarray:
    contract = loan_contract()
    columns_train, columns_rows = [], []
    numeric = [f.name for f in contract.features if not f.is_categorical]
    fits = {name: train_frame[name].astype(float).to_numpy() for name in numeric}
    sent = {
        name: np.array([np.nan if v is None or v == "" else float(v) for v in rows[name]], dtype=float)
        for name in numeric
    }
    for name in numeric:  # imputed values first, in contract order
        median = np.nanmedian(fits[name])
        columns_train.append(np.where(np.isnan(fits[name]), median, fits[name]))
        columns_rows.append(np.where(np.isnan(sent[name]), median, sent[name]))
    for name in numeric:  # then an indicator for each column that had gaps at fit time
        if np.isnan(fits[name]).any():
            columns_train.append(np.isnan(fits[name]).astype(float))
            columns_rows.append(np.isnan(sent[name]).astype(float))
    fit_matrix, row_matrix = np.column_stack(columns_train), np.column_stack(columns_rows)
    mean, std = fit_matrix.mean(axis=0), fit_matrix.std(axis=0)
    std[std == 0] = 1.0
    parts = [(row_matrix - mean) / std]
    for feature in contract.features:
        if feature.is_categorical:
            seen = sorted(train_frame[feature.name].fillna("__missing__").astype(str).unique())
            values = [("__missing__" if pd.isna(v) else str(v)) for v in rows[feature.name]]
            parts.append(np.array([[v == c for c in seen] for v in values], dtype=float))
    z = np.column_stack(parts) @ weights + intercept
    return 1 / (1 + np.exp(-z))


@pytest.fixture(scope="module")
def fitted():
    config = TrainingConfig()
    train_frame, eval_frame = split(generate(4000, seed=9), loan_contract(), config)
    return train_frame, eval_frame.head(200), train(train_frame, loan_contract(), config)


def test_predict_matches_the_hand_computed_probability(fitted):
    train_frame, rows, pipeline = fitted
    # what a client sends: numbers as strings (one blank), categories as a pandas categorical
    sent = rows.copy()
    sent["credit_score"] = sent["credit_score"].astype(str)
    sent["annual_income"] = [f"{v:.2f}" for v in sent["annual_income"]]
    sent = sent.astype({"years_employed": object})
    sent.loc[sent.index[3], "years_employed"] = None
    sent["region"] = sent["region"].astype("category")
    sent.loc[sent.index[5], "loan_purpose"] = None
    model = pipeline.named_steps["model"]
    expected = oracle(train_frame, sent, model.coef_[0], float(model.intercept_[0]))
    labels, probabilities = predict(pipeline, sent, loan_contract(), 0.5)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(labels, (expected >= 0.5).astype(int))
