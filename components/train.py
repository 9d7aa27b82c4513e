"""Step 3: split, then fit a scikit-learn Pipeline (ColumnTransformer + estimator) from config."""

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack.core.contract import DataContract
from mlstack.core.labels import binary_series
from mlstack.core.model import coerce_features
from mlstack.core.settings import TrainingConfig

ESTIMATORS: dict[str, tuple[type, dict[str, Any]]] = {
    "logistic_regression": (LogisticRegression, {"max_iter": 2000, "C": 1.0}),
    "hist_gradient_boosting": (HistGradientBoostingClassifier, {"max_iter": 200, "learning_rate": 0.1}),
    "random_forest": (RandomForestClassifier, {"n_estimators": 200, "min_samples_leaf": 5, "n_jobs": 1}),
}


def encode_target(frame: pd.DataFrame, contract: DataContract) -> pd.Series:
    """1 where the target is the contract's positive class, else 0 (``mlstack.core.labels``).

    Training data has exactly two classes (validated first), so the one that is not positive is 0.
    """
    labels = binary_series(frame[contract.target.name], contract.target)
    return labels.fillna(0).astype(int).rename("y")


def split(
    frame: pd.DataFrame, contract: DataContract, config: TrainingConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split stratified on the target: same data and seed, same rows on each side."""
    y = encode_target(frame, contract)
    train, test = train_test_split(frame, test_size=config.test_size, random_state=config.seed, stratify=y)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def build_pipeline(contract: DataContract, config: TrainingConfig) -> Pipeline:
    """Preprocessing by contract type, then the configured estimator with the seed."""
    numeric = contract.numeric_features
    categorical = contract.categorical_features
    linear = config.estimator == "logistic_regression"
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if linear:
        numeric_steps.append(("scale", StandardScaler()))
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    estimator_cls, defaults = ESTIMATORS[config.estimator]
    params = {**defaults, **config.params, "random_state": config.seed}
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", estimator_cls(**params))])


def train(train_frame: pd.DataFrame, contract: DataContract, config: TrainingConfig) -> Pipeline:
    """Fit the pipeline on the contract's features; deterministic for the same inputs."""
    pipeline = build_pipeline(contract, config)
    pipeline.fit(coerce_features(train_frame, contract), encode_target(train_frame, contract))
    return pipeline
