"""Batch scoring under pressure: full disk, unwritable output, FIFO input, duplicate CSV columns,
input columns named like output columns.

Each case runs ``mlstack batch run --local`` (or, for the full disk, the scoring step's own
function) the way a user meets it. Two need what a root test process cannot get from file
permissions: a real full disk is a small tmpfs in a private mount namespace (``unshare -m``,
util-linux), and a folder root cannot write is one seen without CAP_DAC_OVERRIDE (``setpriv``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlstack.core.data import save_table
from mlstack.core.generator import generate
from tests.conftest import ROOT
from tests.tools import required_strictly


def _mlstack(*args: str, home, prefix: tuple[str, ...] = (), timeout: float = 900):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mlstack.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"MLSTACK_HOME": str(home), "MLSTACK_LOG_FORMAT": "text"},
    )


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        message = f"{program} (util-linux) is not installed"
        if required_strictly():
            pytest.fail(message)
        pytest.skip(message)
    return path


def _private_mounts() -> list[str]:
    """``unshare`` giving this test a mount namespace of its own (root, or a user namespace)."""
    command = [_need("unshare"), "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    probe = subprocess.run([*command, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        message = f"cannot create a private mount namespace: {probe.stderr.strip()}"
        if required_strictly():
            pytest.fail(message)
        pytest.skip(message)
    return command


FULL_DISK_CHILD = """
import json, subprocess, sys
from pathlib import Path
from mlstack.components.batch_score import score_table
from mlstack.core.errors import MlstackError
from mlstack.core.generator import loan_contract
from mlstack.core.model import LoadedModel
from tests.fixtures.batch import THRESHOLD, fit_loan_model

model = LoadedModel(fit_loan_model(), loan_contract(), THRESHOLD, "fraud", "7")
source, folder = sys.argv[1], Path(sys.argv[2])
for size in json.loads(sys.argv[3]):
    # a fresh filesystem of ``size`` bytes per run; it exists only in this mount namespace
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    outcome = {"size": size}
    try:
        score_table(model, source, str(folder / "out.parquet"), chunk_rows=2000)
        outcome["exit"] = 0
    except MlstackError as exc:
        outcome["exit"], outcome["error"] = exc.exit_code, str(exc)
    except BaseException as exc:
        outcome["exit"], outcome["error"] = "raw", f"{type(exc).__name__}: {exc}"
    outcome["left"] = sorted(p.name for p in folder.iterdir())
    subprocess.run(["umount", str(folder)], check=True)
    print(json.dumps(outcome), flush=True)
"""


def test_full_disk_leaves_no_temporary_files_and_says_so(tmp_path, loan_model):
    """The disk fills at every stage of a run (first chunk, middle, footers, the second file).

    Sizes run from a few KiB to just above what the run needs, in page steps near the end, where
    the footers and the rejects file are written: each run either publishes both files or fails
    with one sentence that names the file and leaves the folder empty.
    """
    from mlstack.components.batch_score import score_table

    unshare = _private_mounts()
    frame = generate(30_000, seed=3)
    frame.loc[frame.index[::50], "credit_score"] = 2000  # 2% rejects: the rejects file has rows too
    source = save_table(frame, str(tmp_path / "in.parquet"))
    score_table(loan_model, source, str(tmp_path / "free" / "out.parquet"), chunk_rows=2000)
    needed = sum(path.stat().st_size for path in (tmp_path / "free").iterdir())
    page = 4096
    top = (needed // page + 2) * page
    sizes = [8 * 1024, needed // 4, needed // 2] + list(range(top - 16 * page, top + page, page))
    out = tmp_path / "out"
    out.mkdir()
    script = 'exec "$0" -c "$1" "$2" "$3" "$4"'
    done = subprocess.run(
        [*unshare, "sh", "-c", script, sys.executable, FULL_DISK_CHILD, source, str(out), json.dumps(sizes)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(outcomes) == len(sizes)
    failed = [o for o in outcomes if o["exit"] != 0]
    assert len(failed) >= 3, outcomes  # the small disks at least
    assert outcomes[-1]["exit"] == 0, outcomes  # and the largest holds the whole run
    assert [o for o in failed if o["left"]] == []  # no *.tmp-* file, no file of a failed run
    for outcome in failed:
        assert outcome["exit"] == 1, outcome
        assert "No space left on device" in outcome["error"], outcome
        assert "out.parquet" in outcome["error"] or "out.rejects.parquet" in outcome["error"], outcome
    for outcome in outcomes:
        if outcome["exit"] == 0:
            assert outcome["left"] == ["out.parquet", "out.rejects.parquet"], outcome


def test_unwritable_output_folder_is_exit_2_before_the_pipeline(registered_loan_model, tmp_path):
    source = save_table(generate(50, seed=4), str(tmp_path / "in.parquet"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    # root writes anywhere; without CAP_DAC_OVERRIDE it meets the folder's permissions like a user
    prefix = (_need("setpriv"), "--bounding-set=-dac_override") if os.geteuid() == 0 else ()
    started = time.monotonic()
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", source,
        "--output", str(locked / "out.parquet"), home=registered_loan_model.home, prefix=prefix,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(locked) in last and "not writable" in last, last
    assert "resolve-model" not in result.stderr  # refused before any pipeline step started
    assert time.monotonic() - started < 120
    assert list(locked.iterdir()) == []


def test_fifo_input_is_refused_not_waited_on(registered_loan_model, tmp_path):
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)  # nobody ever writes to it
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", str(fifo),
        "--output", str(tmp_path / "out.parquet"), home=registered_loan_model.home, timeout=180,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "not a regular file" in last and str(fifo) in last, last


def test_csv_with_a_duplicate_column_is_one_clear_line(registered_loan_model, tmp_path):
    frame = generate(50, seed=5)
    text = frame.to_csv(index=False).splitlines()
    # a spreadsheet export with the score column twice (every contract column is still there)
    rows = [f"{line},credit_score" if i == 0 else f"{line},700" for i, line in enumerate(text)]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", str(tmp_path / "in.csv"),
        "--output", str(tmp_path / "out.parquet"), home=registered_loan_model.home,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "duplicate column" in last and "'credit_score'" in last, last
    assert "KeyError" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_input_columns_named_like_outputs_are_refused_not_dropped(registered_loan_model, tmp_path):
    frame = generate(50, seed=6)
    frame["prediction"] = "approved by the old rules engine"  # the user's own column, not ours
    frame["model_version"] = "rules-v2"
    source = save_table(frame, str(tmp_path / "in.parquet"))
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", source,
        "--output", str(tmp_path / "out.parquet"), home=registered_loan_model.home,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "['model_version', 'prediction']" in last, last
    assert "rename" in last
    assert not (tmp_path / "out.parquet").exists()


def test_rescoring_an_earlier_output_replaces_its_columns_with_a_warning(registered_loan_model, tmp_path):
    source = save_table(generate(60, seed=7), str(tmp_path / "in.parquet"))
    first = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", source,
        "--output", str(tmp_path / "first.parquet"), home=registered_loan_model.home,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    again = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", str(tmp_path / "first.parquet"),
        "--output", str(tmp_path / "second.parquet"), home=registered_loan_model.home,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "warning: the input is an earlier batch output: its columns" in again.stderr
    assert "row_number" in again.stderr and "run_id" in again.stderr
    second = pd.read_parquet(tmp_path / "second.parquet")
    assert list(second.columns).count("prediction") == 1 and len(second) == 60


def test_output_folder_is_created_when_missing(registered_loan_model, tmp_path):
    """The writability check creates a missing local folder rather than refusing it (unchanged behaviour)."""
    source = save_table(generate(30, seed=8), str(tmp_path / "in.parquet"))
    target = Path(tmp_path / "new" / "deeper" / "out.parquet")
    result = _mlstack(
        "batch", "run", "--local", "--model", "fraud", "--input", source, "--output", str(target),
        home=registered_loan_model.home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_parquet(target)) == 30
    # which engine answered, and why (this registered version carries no compiled artifact)
    assert "engine: sklearn: the model version has no compiled artifact" in result.stderr
