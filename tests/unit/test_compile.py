"""The compile step: every supported estimator with the training step's preprocessing exports and passes.

Expected values are scikit-learn's own ``predict_proba``; the ONNX side is onnxruntime on the
exported bytes. The evaluation rows have missing values in numeric and categorical features, so
the median imputer, its missing indicator and the categorical fill value are all exercised.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mlstack.components.compile import compile_model, export, missing_tokens
from mlstack.components.train import train
from mlstack.core import generator
from mlstack.core.compiled import METADATA_KEY, ONNX_PATH, open_compiled
from mlstack.core.model import coerce_features
from mlstack.core.settings import CompileConfig, TrainingConfig

CONTRACT = generator.loan_contract()
PARAMS = {
    "logistic_regression": {},
    "hist_gradient_boosting": {"max_iter": 40},
    "random_forest": {"n_estimators": 30},
}


@pytest.fixture(scope="module", params=list(PARAMS))
def fitted(request):
    config = TrainingConfig(estimator=request.param, params=PARAMS[request.param], seed=5)
    pipeline = train(generator.generate(3000, seed=5), CONTRACT, config)
    evaluation = generator.generate(1500, seed=77)
    return request.param, pipeline, evaluation


def _onnx_proba(onnx_bytes: bytes, features, tokens: dict[str, str]) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {}
    for feature in CONTRACT.features:
        column = features[feature.name].to_numpy(dtype=object)
        if feature.is_categorical:
            values = [tokens[feature.name] if not isinstance(v, str) else v for v in column]
            feeds[feature.name] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            feeds[feature.name] = column.astype(np.float64).reshape(-1, 1)
    return session.run(["probabilities"], feeds)[0][:, 1]


def test_every_estimator_exports_within_the_gate(fitted):
    estimator, pipeline, evaluation = fitted
    features = coerce_features(evaluation, CONTRACT)
    assert features.isna().to_numpy().sum() > 100  # the set has missing values to impute and flag
    assert pipeline.steps[0][1].transformers_[0][1].steps[0][1].add_indicator  # the pipeline shape kept
    expected = pipeline.predict_proba(features)[:, 1]
    got = _onnx_proba(export(pipeline, CONTRACT), features, missing_tokens(pipeline, CONTRACT))
    assert np.max(np.abs(got - expected)) <= 1e-6, estimator
    assert np.array_equal(got >= 0.5, expected >= 0.5), estimator


def test_the_gate_attaches_and_records_the_difference(fitted):
    _, pipeline, evaluation = fitted
    result = compile_model(pipeline, evaluation, CONTRACT, 0.5, CompileConfig())
    assert result.attached and result.onnx, result.reason
    block = result.metadata[METADATA_KEY]
    assert block["path"] == ONNX_PATH and block["rows"] == len(evaluation) and block["label_flips"] == 0
    assert float(result.tags["compiled_max_abs_diff"]) <= 1e-6 and result.tags["compiled_engine"] == "onnx"


def test_a_gate_tighter_than_the_measured_difference_refuses_the_artifact():
    config = TrainingConfig(estimator="hist_gradient_boosting", params={"max_iter": 20}, seed=5)
    pipeline = train(generator.generate(2000, seed=5), CONTRACT, config)
    # tree probabilities leave onnxruntime as float32: a difference of ~1e-8 is measured
    result = compile_model(
        pipeline, generator.generate(500, seed=6), CONTRACT, 0.5, CompileConfig(max_abs_diff=1e-12)
    )
    assert not result.attached and result.onnx is None
    assert result.reason.startswith("parity gate failed on 500 evaluation rows")
    assert result.tags["compiled_engine"] == "none" and float(result.tags["compiled_max_abs_diff"]) > 1e-12
    assert "sha256" not in result.metadata[METADATA_KEY]


def test_compilation_off_or_without_an_evaluation_set_says_why(fitted):
    _, pipeline, evaluation = fitted
    off = compile_model(pipeline, evaluation, CONTRACT, 0.5, CompileConfig(enabled=False))
    assert not off.attached and "compilation is off" in off.reason
    missing = compile_model(pipeline, None, CONTRACT, 0.5, CompileConfig())
    assert not missing.attached and "no evaluation set" in missing.reason


def test_an_estimator_without_a_converter_is_a_result_not_a_crash():
    from sklearn.compose import ColumnTransformer
    from sklearn.neighbors import KNeighborsClassifier  # has a converter, but not for string inputs here
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    features = coerce_features(generator.generate(300, seed=1), CONTRACT)
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer([("num", FunctionTransformer(np.nan_to_num), CONTRACT.numeric_features)]),
            ),
            ("model", KNeighborsClassifier()),
        ]
    ).fit(features, np.arange(300) % 2)
    result = compile_model(pipeline, generator.generate(100, seed=2), CONTRACT, 0.5, CompileConfig())
    assert not result.attached and result.reason.startswith("export failed:")


def test_a_tampered_artifact_is_not_served(tmp_path, fitted):
    _, pipeline, evaluation = fitted
    result = compile_model(pipeline, evaluation, CONTRACT, 0.5, CompileConfig())
    meta = result.metadata
    (tmp_path / "compiled").mkdir()
    (tmp_path / ONNX_PATH).write_bytes(result.onnx)
    engine, reason = open_compiled(tmp_path, meta, CONTRACT)
    assert engine is not None and "passed the parity gate" in reason
    (tmp_path / ONNX_PATH).write_bytes(result.onnx + b"\0")
    engine, reason = open_compiled(tmp_path, meta, CONTRACT)
    assert engine is None and "does not match the sha256" in reason
    (tmp_path / ONNX_PATH).unlink()
    engine, reason = open_compiled(tmp_path, meta, CONTRACT)
    assert engine is None and "is missing" in reason
    engine, reason = open_compiled(tmp_path, {}, CONTRACT)
    assert engine is None and "no compiled artifact" in reason
