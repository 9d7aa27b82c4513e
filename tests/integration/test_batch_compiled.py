"""Issue 24 goal 4: batch scoring runs the compiled engine when its parity gate passed, and says which.

The model directories come from the registration path (``components/compile.save_model_dir``:
export, parity gate on a held-out set, artifact attached only if it passed). Expected answers come
from ``LoadedModel.predict`` on the same rows — the online predictor's path — and from the
scikit-learn pipeline itself within the gate's tolerance; rejects and lineage must not depend on
the engine.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mlstack.components.batch_score import score_table
from mlstack.core.data import save_table
from mlstack.core.generator import generate
from mlstack.core.model import coerce_features, load
from mlstack.core.settings import CompileConfig
from tests.fixtures.serving import train_model


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("compiled") / "model")


def _input(tmp_path, suffix: str) -> tuple[pd.DataFrame, str]:
    frame = generate(6000, seed=77)
    frame.loc[frame.index[::97], "credit_score"] = 2000  # above the contract's maximum: rejected
    frame.loc[frame.index[5::89], "region"] = None  # a missing category: scored (the imputer's token)
    return frame, save_table(frame, str(tmp_path / f"in{suffix}"))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_compiled_engine_scores_the_batch_like_the_online_predictor(compiled_dir, tmp_path, suffix, caplog):
    frame, source = _input(tmp_path, suffix)
    model = load(str(compiled_dir), name="loans", version="4")
    assert model.engine == "onnx", model.engine_reason
    with caplog.at_level(logging.INFO):
        summary = score_table(model, source, str(tmp_path / "onnx.parquet"), run_id="r", chunk_rows=1000)
    assert summary.engine == "onnx" and "parity gate" in summary.engine_reason
    assert any("on onnx" in record.getMessage() for record in caplog.records)
    out = pd.read_parquet(tmp_path / "onnx.parquet")
    kept = frame.iloc[out["row_number"].to_numpy()]
    labels, proba = model.predict(kept)  # the online predictor's engine on the same rows
    np.testing.assert_array_equal(out["probability"].to_numpy(), proba)
    np.testing.assert_array_equal(out["prediction"].to_numpy(), labels)
    sklearn = model.pipeline.predict_proba(coerce_features(kept, model.contract))[:, 1]
    assert np.max(np.abs(out["probability"].to_numpy() - sklearn)) <= CompileConfig().max_abs_diff

    # the same rejects and lineage as scikit-learn scoring
    plain = load(str(compiled_dir), name="loans", version="4", engine="sklearn")
    base = score_table(plain, source, str(tmp_path / "sk.parquet"), run_id="r", chunk_rows=1000)
    assert base.engine == "sklearn"
    assert (summary.rows, summary.scored, summary.rejected, summary.reasons) == (
        base.rows,
        base.scored,
        base.rejected,
        base.reasons,
    )
    assert summary.input_fingerprint == base.input_fingerprint
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "onnx.rejects.parquet"), pd.read_parquet(tmp_path / "sk.rejects.parquet")
    )
    sk = pd.read_parquet(tmp_path / "sk.parquet")
    pd.testing.assert_frame_equal(out.drop(columns=["probability"]), sk.drop(columns=["probability"]))


def test_a_failed_gate_scores_with_sklearn_and_says_why(tmp_path, caplog):
    # a tolerance no float export meets: the gate refuses, registration attaches no artifact
    model_dir = train_model(
        tmp_path / "model", compile_config=CompileConfig(max_abs_diff=0.0, max_label_flips=0)
    )
    model = load(str(model_dir), name="loans", version="5")
    _, source = _input(tmp_path, ".parquet")
    with caplog.at_level(logging.WARNING):
        summary = score_table(model, source, str(tmp_path / "out.parquet"), run_id="r", chunk_rows=2000)
    assert summary.engine == "sklearn" and "not attached" in summary.engine_reason
    assert any("with scikit-learn" in record.getMessage() for record in caplog.records)
    assert "| engine | sklearn: the compiled artifact was not attached" in summary.markdown()
