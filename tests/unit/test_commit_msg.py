"""Commit messages: subject of at most 72 characters in the imperative, a body for a real change.

``tools/commit_msg.py`` is what ``make lint`` runs over the commits after ``.commit-msg-base`` and
what ``.githooks/commit-msg`` runs on each new message; here both run against a scratch repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit
sys.path.insert(0, str(ROOT / "tools"))
from commit_msg import problems  # noqa: E402

WHY = "\n\nThe sink dropped events whose ce-id repeated within the window."


def test_a_good_message_passes():
    assert problems("Keep repeated ce-ids out of the payload log" + WHY, changed_lines=200) == []
    assert problems("sink: keep repeated ce-ids out of the payload log" + WHY, changed_lines=200) == []
    assert problems("Fix a typo in the README", changed_lines=2) == []  # trivial: no body needed


@pytest.mark.parametrize(
    ("message", "lines", "complaint"),
    [
        ("Keep " + "x" * 70, 1, "the subject is 75 characters; at most 72"),
        ("Added the sink's dedup window" + WHY, 100, "starts with 'added'"),
        ("sink: adding a dedup window" + WHY, 100, "starts with 'adding'"),
        ("Keep the dedup window.", 1, "ends with a period"),
        ("Keep the dedup window\nsecond line", 1, "the second line must be empty"),
        ("Keep the dedup window", 31, "31 lines changed and no body"),
        ("", 0, "the subject (first line) is empty"),
        ("fixup! Keep the dedup window", 1, "left unsquashed"),
    ],
)
def test_a_bad_message_is_named(message, lines, complaint):
    found = problems(message, changed_lines=lines)
    assert any(complaint in problem for problem in found), found


def _git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)


@pytest.fixture
def repo(tmp_path):
    """A scratch repository with the checker, the hook, one commit from before the rule as the base."""
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "commit_msg.py", tmp_path / "tools")
    shutil.copytree(ROOT / ".githooks", tmp_path / ".githooks")
    _git(tmp_path, "init", "-q")
    (tmp_path / "old.txt").write_text("x\n")
    _git(tmp_path, "add", ".")
    assert (
        _git(
            tmp_path,
            "commit",
            "-qm",
            "an old subject from before the rule, far longer than seventy-two chars",
        ).returncode
        == 0
    )
    base = _git(tmp_path, "rev-parse", "HEAD").stdout.strip()
    (tmp_path / ".commit-msg-base").write_text(base + "\n")
    return tmp_path


def test_lint_checks_only_the_commits_after_the_base(repo):
    checker = [sys.executable, "tools/commit_msg.py"]
    assert subprocess.run(checker, cwd=repo).returncode == 0  # the old commit is not judged
    (repo / "new.txt").write_text("y\n" * 40)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "Added forty lines")
    failed = subprocess.run(checker, cwd=repo, capture_output=True, text=True)
    assert failed.returncode == 1
    assert "'Added forty lines': the subject starts with 'added'" in failed.stderr
    assert "41 lines changed and no body" in failed.stderr


def test_the_hook_refuses_a_bad_message_and_keeps_a_good_one(repo):
    _git(repo, "config", "core.hooksPath", ".githooks")
    (repo / "new.txt").write_text("y\n" * 40)
    _git(repo, "add", "new.txt")
    refused = _git(repo, "commit", "-qm", "Adding forty lines")
    assert refused.returncode != 0 and "starts with 'adding'" in refused.stderr
    made = _git(repo, "commit", "-qm", "Add forty lines\n\nThe test needs a change of more than thirty.")
    assert made.returncode == 0, made.stderr
