"""A failed local pipeline run says its root cause in one line, and deterministic steps are not retried."""

from __future__ import annotations

from pathlib import Path


def test_failure_line_is_the_root_cause():
    """A failed step's line names the exception, not only "Inner task failed: 'train-op'"."""
    from mlstack.pipelines.local import failure_line

    log = "\n".join(
        [
            "Executing task 'train-op'",
            "Traceback (most recent call last):",
            '  File "/x/sklearn/model_selection/_split.py", line 2300, in _iter_indices',
            "ValueError: The least populated class in y has only 1 member, which is too few.",
            "Task 'train-op' finished with status FAILURE",
        ]
    )
    line = failure_line(
        "Pipeline 'training' finished with status FAILURE. Inner task failed: 'train-op'.",
        log,
        Path("/h/kfp/last-run.log"),
    )
    assert line == (
        "step train-op failed: ValueError: The least populated class in y has only 1 member, "
        "which is too few. (full log: /h/kfp/last-run.log)"
    )


def test_train_is_not_retried():
    """A deterministic step retried repeats its failure: train has no retry policy."""
    import yaml

    from mlstack.pipelines.training import compile_training

    out = compile_training(Path(__import__("tempfile").mkdtemp()))
    spec = next(yaml.safe_load_all(out.read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    assert "retryPolicy" not in tasks["train-op"]
