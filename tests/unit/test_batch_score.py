"""Batch scoring as a user sees it: every row either scored or rejected with its reason, answers equal predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.components.batch_io import default_rejects_uri, expand_uri
from mlstack.components.batch_score import score_table
from mlstack.core.data import DataError, fingerprint, load_table, save_table
from mlstack.core.errors import UsageError
from mlstack.core.generator import generate
from mlstack.core.model import model_uri, parse_model_spec
from tests.fixtures.batch import THRESHOLD


def _break_one_percent(frame: pd.DataFrame, seed: int = 5) -> tuple[pd.DataFrame, dict[int, str]]:
    """Break 1% of the rows, each in one of several ways; return the frame and row -> expected reason text."""
    frame = frame.copy()
    rng = np.random.default_rng(seed)
    broken = rng.choice(len(frame), size=len(frame) // 100, replace=False)
    expected: dict[int, str] = {}
    frame["credit_score"] = frame["credit_score"].astype(float)
    frame["region"] = frame["region"].astype(object)
    for i, row in enumerate(sorted(broken)):
        kind = i % 4
        if kind == 0:
            frame.loc[row, "credit_score"] = 1200.0
            expected[row] = "credit_score: value above the allowed maximum 850"
        elif kind == 1:
            frame.loc[row, "region"] = "atlantis"
            expected[row] = "region: value outside the allowed categories"
        elif kind == 2:
            frame.loc[row, "annual_income"] = np.nan
            expected[row] = "annual_income: missing value where the contract says not nullable"
        else:
            frame.loc[row, "debt_to_income"] = -0.5
            expected[row] = "debt_to_income: value below the allowed minimum 0"
    return frame, expected


def _independent_answers(model, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn directly on the contract's columns, with the model's threshold: no mlstack code."""
    features = frame[model.contract.feature_names].copy()
    for name in model.contract.numeric_features:
        features[name] = features[name].astype(float)
    proba = model.pipeline.predict_proba(features)[:, 1]
    return (proba >= THRESHOLD).astype(int), proba


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_clean_input_is_scored_in_chunks_with_the_models_answers(tmp_path, loan_model, suffix):
    frame = generate(3000, seed=21)
    source = save_table(frame, str(tmp_path / f"in{suffix}"))
    summary = score_table(loan_model, source, str(tmp_path / "out.parquet"), run_id="run-1", chunk_rows=700)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert (summary.rows, summary.scored, summary.rejected) == (3000, 3000, 0)
    assert out["row_number"].tolist() == list(range(3000))
    labels, proba = _independent_answers(loan_model, frame)
    assert int((out["prediction"].to_numpy() != labels).sum()) == 0
    np.testing.assert_allclose(out["probability"].to_numpy(), proba, rtol=0, atol=1e-12)
    assert 0 < out["prediction"].sum() < len(out)  # the threshold splits the rows: a real test of it
    assert set(out["model_name"]) == {"fraud"} and set(out["model_version"]) == {"7"}
    assert set(out["run_id"]) == {"run-1"}
    assert set(out["input_fingerprint"]) == {fingerprint(load_table(source))}
    # the drift job reads this as --current: contract features keep numeric types, plus the answers
    for name in loan_model.contract.numeric_features:
        assert pd.api.types.is_numeric_dtype(out[name]), name
    pd.testing.assert_frame_equal(
        out[loan_model.contract.categorical_features], frame[loan_model.contract.categorical_features]
    )
    assert pq.read_table(tmp_path / "out.rejects.parquet").num_rows == 0


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_one_percent_breaking_rows_are_exactly_the_rejects(tmp_path, loan_model, suffix):
    frame, expected = _break_one_percent(generate(5000, seed=22))
    source = save_table(frame, str(tmp_path / f"in{suffix}"))
    summary = score_table(loan_model, source, str(tmp_path / "out.parquet"), chunk_rows=1000)
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert summary.rejected == len(expected) == 50
    assert sorted(rejects["row_number"]) == sorted(expected)
    for row_number, reason in zip(rejects["row_number"], rejects["reject_reason"], strict=True):
        assert expected[row_number] in reason, (row_number, reason)
    assert summary.scored == 5000 - 50
    assert sorted(out["row_number"]) == sorted(set(range(5000)) - set(expected))
    # rejected rows keep their input values, e.g. the unknown region
    assert "atlantis" in set(rejects["region"])
    assert sum(summary.reasons.values()) >= 50


def test_a_word_in_a_numeric_csv_column_rejects_only_its_row(tmp_path, loan_model):
    frame = generate(1000, seed=23)
    path = tmp_path / "in.csv"
    save_table(frame, str(path))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("annual_income")
    cells = lines[801].split(",")  # data row 800
    cells[column] = "lots"
    lines[801] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    summary = score_table(loan_model, str(path), str(tmp_path / "out.parquet"), chunk_rows=300)
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert (summary.scored, summary.rejected) == (999, 1)
    assert rejects["row_number"].tolist() == [800]
    assert rejects["reject_reason"].iloc[0] == "annual_income: expected numeric value, found 'lots'"
    assert rejects["annual_income"].iloc[0] == "lots"  # the reject keeps what the file said


def test_input_missing_a_contract_column_fails_before_writing(tmp_path, loan_model):
    source = save_table(generate(100, seed=1).drop(columns=["region"]), str(tmp_path / "in.parquet"))
    with pytest.raises(DataError, match=r"lacks the contract columns \['region'\]"):
        score_table(loan_model, source, str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.parquet"]


def test_missing_input_is_a_clear_error(tmp_path, loan_model):
    with pytest.raises(DataError, match="no data at"):
        score_table(loan_model, str(tmp_path / "nope.parquet"), str(tmp_path / "out.parquet"))


def test_rescoring_earlier_outputs_replaces_their_lineage_columns(tmp_path, loan_model):
    frame = generate(200, seed=2)
    frame.loc[3, "credit_score"] = 5000
    source = save_table(frame, str(tmp_path / "in.parquet"))
    score_table(loan_model, source, str(tmp_path / "first.parquet"), run_id="a")
    score_table(loan_model, str(tmp_path / "first.parquet"), str(tmp_path / "second.parquet"), run_id="b")
    second = pd.read_parquet(tmp_path / "second.parquet")
    assert list(second.columns).count("prediction") == 1 and list(second.columns).count("row_number") == 1
    assert set(second["run_id"]) == {"b"}
    # a rejects file fixed by hand and scored again: its old row_number/reject_reason are replaced
    rejects = pd.read_parquet(tmp_path / "first.rejects.parquet")
    assert rejects["row_number"].tolist() == [3]
    score_table(loan_model, str(tmp_path / "first.rejects.parquet"), str(tmp_path / "again.parquet"))
    again = pd.read_parquet(tmp_path / "again.rejects.parquet")
    assert list(again.columns).count("row_number") == 1 and list(again.columns).count("reject_reason") == 1
    assert again["row_number"].tolist() == [0]  # its position in this run's input


def test_model_spec_forms():
    assert model_uri("fraud") == "models:/fraud@champion"
    assert model_uri("fraud@challenger") == "models:/fraud@challenger"
    assert model_uri("fraud/3") == "models:/fraud/3"
    assert model_uri("models:/fraud/3") == "models:/fraud/3"
    for bad in ("", "fraud@", "fraud/x", "a b", "fraud/3/4"):
        with pytest.raises(UsageError, match="NAME@ALIAS"):
            model_uri(bad)


def test_one_parser_for_every_model_reference():
    # the batch spec, the serve --model URI and the registry lookup all go through parse_model_spec
    assert parse_model_spec("models:/fraud") == ("fraud", "champion", "")
    assert parse_model_spec(" fraud@challenger ") == ("fraud", "challenger", "")
    assert parse_model_spec("models:/fraud/12/") == ("fraud", "", "12")
    nowhere = connect(MlflowAddress(tracking_uri="http://127.0.0.1:9"))  # nothing listens there
    for bad in ("models:/fraud/x", "models:/fraud@", "models:/a b"):  # refused before any registry call
        with pytest.raises(UsageError, match="NAME@ALIAS"):
            nowhere.resolve(bad)


def test_output_naming():
    assert default_rejects_uri("s3://b/scores/out.parquet") == "s3://b/scores/out.rejects.parquet"
    assert default_rejects_uri("/tmp/scores") == "/tmp/scores.rejects.parquet"
    assert expand_uri("s3://b/date={date}/{run_id}.parquet", "r1", pd.Timestamp("2026-01-02")) == (
        "s3://b/date=2026-01-02/r1.parquet"
    )
