"""`mlstack batch run` loses no row silently.

An ``--output`` that is the ``--rejects`` file or the input is refused before anything is written
(the rejects would overwrite the scores), and an input whose every row is rejected exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlstack.core import data as dataio
from mlstack.core.generator import generate
from tests.conftest import ROOT


def _batch(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "batch", "run", "--local", *args],
        cwd=ROOT,
        env=os.environ | {"MLSTACK_HOME": str(home), "MLSTACK_LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_refuse_overlap_pure(tmp_path):
    from mlstack.components.batch_score import refuse_overlap
    from mlstack.core.errors import UsageError

    same = str(tmp_path / "x.parquet")
    with pytest.raises(UsageError, match="--output and --rejects are the same file"):
        refuse_overlap(str(tmp_path / "in.csv"), same, same)
    with pytest.raises(UsageError, match="is the input"):
        refuse_overlap(same, same, str(tmp_path / "r.parquet"))
    refuse_overlap(str(tmp_path / "in.csv"), same, str(tmp_path / "r.parquet"))  # distinct: fine


@pytest.mark.parametrize("which", ["rejects", "input"])
def test_output_equal_to_rejects_or_input_is_refused(which, registered_loan_model, tmp_path):
    source = tmp_path / "in.parquet"
    dataio.save_table(generate(10, seed=2), str(source))
    output = str(tmp_path / "x.parquet") if which == "rejects" else str(source)
    result = _batch(
        "--model",
        "fraud",
        "--input",
        str(source),
        "--output",
        output,
        "--rejects",
        str(tmp_path / "x.parquet"),
        home=registered_loan_model.home,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert lines[-1].startswith("error:") and ("same file" in lines[-1] or "is the input" in lines[-1])
    assert dataio.load_table(str(source)).shape[0] == 10  # the input is untouched


def test_everything_rejected_is_exit_1(registered_loan_model, tmp_path):
    frame = generate(10, seed=2)
    frame["credit_score"] = 10_000  # above the contract's maximum in every row
    source = tmp_path / "bad.parquet"
    dataio.save_table(frame, str(source))
    result = _batch(
        "--model",
        "fraud",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "out.parquet"),
        home=registered_loan_model.home,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: every one of the 10 rows was rejected")
