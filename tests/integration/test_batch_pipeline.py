"""The batch pipeline end to end: a real kfp.local run against a real (SQLite) MLflow registry, via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.core.data import fingerprint, save_table
from mlstack.core.generator import generate
from mlstack.core.model import predict
from tests.fixtures.batch import THRESHOLD


def _mlstack(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "MLSTACK_HOME": str(home), "MLSTACK_LOG_FORMAT": "text"},
    )


@pytest.fixture(scope="module")
def evaluation_set(tmp_path_factory) -> tuple[pd.DataFrame, str]:
    frame = generate(4000, seed=31)  # a seed the model was not trained on
    path = tmp_path_factory.mktemp("batch-data") / "eval.parquet"
    return frame, save_table(frame, str(path))


def test_batch_run_local_matches_the_online_predict_path(registered_loan_model, evaluation_set, tmp_path):
    frame, source = evaluation_set
    out = tmp_path / "scores" / "predictions.parquet"
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud@champion", "--input", source, "--output", str(out),
        "--chunk-rows", "1500", "--json", home=registered_loan_model.home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    printed = json.loads(result.stdout)
    assert printed == {
        "model_version": registered_loan_model.version,
        "scored": 4000,
        "rejected": 0,
        "output": str(out),
        "rejects": str(tmp_path / "scores" / "predictions.rejects.parquet"),
    }
    scored = pd.read_parquet(out)
    # the online predictor's path: the registered version loaded from MLflow, then core predict
    model = connect(MlflowAddress(tracking_uri=registered_loan_model.tracking_uri)).load_model(
        f"fraud/{registered_loan_model.version}"
    )
    online_labels, online_proba = predict(model.pipeline, frame, model.contract, model.threshold)
    assert model.threshold == THRESHOLD
    assert scored["application_id"].tolist() == frame["application_id"].tolist()
    assert int((scored["prediction"].to_numpy() != online_labels).sum()) == 0
    np.testing.assert_allclose(scored["probability"].to_numpy(), online_proba, rtol=0, atol=1e-12)
    assert set(scored["model_version"]) == {registered_loan_model.version}
    assert set(scored["input_fingerprint"]) == {fingerprint(frame)}
    run_ids = set(scored["run_id"])
    assert len(run_ids) == 1 and run_ids != {""}
    # what the Kubeflow UI shows: the Markdown summary and the Metrics of the scoring task
    (task_dir,) = list((registered_loan_model.home / "kfp").glob("mlstack-batch-scoring-*/score-batch*"))
    assert f"# Batch scoring: fraud v{registered_loan_model.version}" in (task_dir / "summary").read_text()
    executor_output = json.loads((task_dir / "executor_output.json").read_text())
    (metrics,) = executor_output["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"]["scored"] == 4000 and metrics["metadata"]["rejected"] == 0
    assert json.loads(executor_output["parameterValues"]["Output"])["run_id"] in run_ids


def test_pinned_version_on_csv_with_breaking_rows(registered_loan_model, tmp_path, monkeypatch):
    """The scoring step's plain function against the registry: NAME/VERSION, CSV input, rejects, {date}."""
    from mlstack.components.batch_score import resolve_spec, run_scoring

    monkeypatch.setenv("MLSTACK_HOME", str(registered_loan_model.home))
    frame = generate(2000, seed=32)
    frame.loc[[5, 1500], "credit_score"] = 999
    source = save_table(frame, str(tmp_path / "in.csv"))
    name, version = resolve_spec(f"fraud/{registered_loan_model.version}")
    summary = run_scoring(
        name, version, source, str(tmp_path / "out-{date}.parquet"), str(tmp_path / "bad.parquet"), 500
    )
    assert (summary.model_version, summary.scored, summary.rejected) == (
        registered_loan_model.version,
        1998,
        2,
    )
    assert "{date}" not in summary.output and pd.read_parquet(summary.output).shape[0] == 1998
    rejects = pd.read_parquet(tmp_path / "bad.parquet")
    assert rejects["row_number"].tolist() == [5, 1500]
    assert set(rejects["reject_reason"]) == {"credit_score: value above the allowed maximum 850.0"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "fraud@nosuchalias"], "cannot resolve models:/fraud@nosuchalias"),
        (["--model", "nosuchmodel"], "cannot resolve models:/nosuchmodel@champion"),
        (["--model", "fraud/x"], "is not NAME, NAME@ALIAS or NAME/VERSION"),
        (["--model", "fraud", "--input", "/nonexistent/in.parquet"], "no data at /nonexistent/in.parquet"),
        (["--model", "fraud", "--output", "/tmp/x-{when}.parquet"], "only the placeholders"),
    ],
)
def test_batch_run_bad_input_is_one_line_and_exit_code(
    registered_loan_model, evaluation_set, tmp_path, monkeypatch, capsys, args, message
):
    """In-process through the real entry point (run_app), so no pipeline starts and it stays fast."""
    from mlstack.cli.main import main

    _, source = evaluation_set
    options = {"--input": source, "--output": str(tmp_path / "o.parquet")}
    options.update(zip(args[::2], args[1::2], strict=True))
    argv = ["mlstack", "batch", "run", "--local", *[item for pair in options.items() for item in pair]]
    monkeypatch.setenv("MLSTACK_HOME", str(registered_loan_model.home))
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    stderr = capsys.readouterr().err
    assert exited.value.code == 2, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: ") and message in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "o.parquet").exists()


def test_a_failing_step_is_one_line_and_exit_1(registered_loan_model, tmp_path):
    """An input without a contract column fails inside the pipeline: the step's sentence, no traceback."""
    source = save_table(generate(300, seed=33).drop(columns=["region"]), str(tmp_path / "in.parquet"))
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", source,
        "--output", str(tmp_path / "out.parquet"), "--json", home=registered_loan_model.home,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "lacks the contract columns ['region']" in last
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out.parquet").exists()


def test_batch_run_without_local_points_at_submit(monkeypatch, capsys, mlstack_home):
    from mlstack.cli.main import main

    monkeypatch.setattr(
        sys, "argv", ["mlstack", "batch", "run", "--model", "m", "--input", "x", "--output", "y"]
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "batch submit --host" in capsys.readouterr().err
