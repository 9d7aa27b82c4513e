"""Run a pipeline through ``kfp.local`` with readable progress and one-line failures.

``kfp.local`` prints every task's log to stdout. Here that stream is captured (kept in
``$MLSTACK_HOME/kfp/last-run.log``), each task start is shown as one progress line on stderr, and
a failed run is turned into the ``mlstack-error:`` sentence its step printed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlstack.components.errors import ERROR_MARKER
from mlstack.core.errors import CheckFailed, MlstackError

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '?([\w-]+)'?")


class _ProgressStream(io.TextIOBase):
    """Collects the runner's stdout and reports each task start on stderr."""

    def __init__(self, show: bool) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self._show = show
        self._started = time.monotonic()

    def write(self, text: str) -> int:
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            clean = _ANSI.sub("", line)
            self.lines.append(clean)
            match = _TASK_START.search(clean)
            if match and self._show:
                elapsed = time.monotonic() - self._started
                print(f"  [{elapsed:5.1f}s] {match.group(1)}", file=sys.stderr, flush=True)
        return len(text)

    def text(self) -> str:
        return "\n".join(self.lines + [_ANSI.sub("", self._partial)])


_EXCEPTION_LINE = re.compile(
    r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Failed|Exit))(?::\s*(.*))?$"
)
_FAILED_TASK = re.compile(
    r"[Tt]ask '?([\w-]+)'? (?:finished with status FAILURE|failed)|failed: '?([\w-]+)'?"
)


def failure_line(runner_message: str, log_text: str, log_path: Path) -> str:
    """One line for a failed run: the failed step and the root cause its traceback ended with."""
    task = next(
        (m.group(1) or m.group(2) for m in _FAILED_TASK.finditer(runner_message + "\n" + log_text)), None
    )
    cause = None
    for line in log_text.splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match and "Task " not in line:
            cause = f"{match.group(1)}: {match.group(2)}" if match.group(2) else match.group(1)
    step = f"step {task}" if task else "pipeline"
    if cause:
        return f"{step} failed: {cause} (full log: {log_path})"
    return f"{step} failed: {runner_message} (full log: {log_path})"


@contextlib.contextmanager
def home_lock(home: Path):
    """One local run at a time per ``$MLSTACK_HOME``: a second run waits for the first.

    Two runs at once on a fresh home both created the MLflow tables (``table latest_metrics already
    exists``) and raced on the aliases; an OS file lock (released when the process dies) orders them.
    """
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".run.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another local run on {home} to finish", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_local(
    pipeline_func: Callable[..., Any], arguments: dict[str, Any], home: Path, show_progress: bool = True
) -> str:
    """Run ``pipeline_func`` locally and return its output; raise a one-line error on failure."""
    from kfp import local

    root = home / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    stream = _ProgressStream(show_progress)
    kfp_logger = logging.getLogger("kfp")
    try:
        with contextlib.redirect_stdout(stream), warnings.catch_warnings():
            # the runner warns that our image is not a stock Python image, and that it ignores
            # resource limits: both expected when the same pipeline runs without a cluster
            warnings.simplefilter("ignore")
            task = pipeline_func(**arguments)
        return task.output
    except RuntimeError as exc:
        reasons = [
            line.split(ERROR_MARKER, 1)[1] for line in stream.text().splitlines() if ERROR_MARKER in line
        ]
        if reasons:
            raise CheckFailed(reasons[-1]) from exc
        raise MlstackError(
            failure_line(_ANSI.sub("", str(exc)), stream.text(), root / "last-run.log")
        ) from exc
    finally:
        (root / "last-run.log").write_text(stream.text())
        kfp_logger.handlers[:] = [h for h in kfp_logger.handlers if getattr(h, "stream", None) is not stream]
