"""Check commit messages: a subject of at most 72 characters in the imperative, a body that says why.

``python3 tools/commit_msg.py FILE`` checks one message (the ``commit-msg`` hook: ``.githooks/``);
``python3 tools/commit_msg.py --since REV`` checks every commit after REV on HEAD (``make lint``;
REV defaults to the one in ``.commit-msg-base``, the last commit made before the check existed).
Exit 0 when all pass, 1 with one line per problem otherwise. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_FILE = ROOT / ".commit-msg-base"
MAX_SUBJECT = 72
# a commit changing more lines than this must say why in a body
TRIVIAL_LINES = 30
# `git commit --fixup/--squash` messages: squashed away by `git rebase --autosquash`
AUTOSQUASH = ("fixup! ", "squash! ", "amend! ")
# first words that end like a past tense or a gerund but are imperatives themselves
IMPERATIVE_EXCEPTIONS = {"bring", "embed", "feed", "need", "proceed", "seed", "shed", "speed", "string"}
PREFIX = re.compile(r"^[\w./-]+: ")  # "sink: ..." names the area; the verb follows


def problems(message: str, changed_lines: int = 0, pending: bool = False) -> list[str]:
    """What is wrong with one message ([] when nothing); ``changed_lines`` decides if a body is due.

    ``pending``: the message of a commit being made, where a ``fixup!`` is fine (it is squashed
    before it is shared); in history it is a leftover.
    """
    if message.startswith(AUTOSQUASH):
        return [] if pending else ["a fixup!/squash!/amend! commit was left unsquashed"]
    lines = [line for line in message.splitlines() if not line.startswith("#")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or not lines[0].strip():
        return ["the subject (first line) is empty"]
    subject = lines[0]
    found = []
    if len(subject) > MAX_SUBJECT:
        found.append(f"the subject is {len(subject)} characters; at most {MAX_SUBJECT}")
    if subject.rstrip().endswith("."):
        found.append("the subject ends with a period")
    first = PREFIX.sub("", subject).split(" ", 1)[0].lower().strip(",:;")
    if first not in IMPERATIVE_EXCEPTIONS and re.fullmatch(r"[a-z]+(ed|ing)", first):
        found.append(f"the subject starts with {first!r}: say what the commit does, in the imperative")
    if len(lines) > 1 and lines[1].strip():
        found.append("the second line must be empty (it separates subject and body)")
    body = [line for line in lines[2:] if line.strip()]
    if changed_lines > TRIVIAL_LINES and not body:
        found.append(f"{changed_lines} lines changed and no body: add one that says why")
    return found


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def changed_lines(commit: str) -> int:
    """Lines added plus removed by ``commit`` (binary files count as one)."""
    total = 0
    for row in _git("show", "--numstat", "--format=", commit).splitlines():
        added, removed, _ = row.split("\t", 2)
        total += 1 if added == "-" else int(added) + int(removed)
    return total


def check_range(base: str) -> list[str]:
    """One line per problem in the commits after ``base`` on HEAD (merges are skipped)."""
    found = []
    for commit in _git("rev-list", "--no-merges", f"{base}..HEAD").split():
        message = _git("log", "-1", "--format=%B", commit)
        for problem in problems(message, changed_lines(commit)):
            found.append(f"{commit[:10]} {message.splitlines()[0][:50]!r}: {problem}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="a message file (the commit-msg hook passes one)")
    parser.add_argument("--since", help="check the commits after this revision (default: .commit-msg-base)")
    args = parser.parse_args(argv)
    if args.file:
        staged = _git("diff", "--cached", "--numstat")
        lines = sum(
            1 if a == "-" else int(a) + int(r)
            for a, r, _ in (row.split("\t", 2) for row in staged.splitlines())
        )
        found = problems(Path(args.file).read_text(), lines, pending=True)
    else:
        base = args.since or BASE_FILE.read_text().split()[0]
        try:
            _git("cat-file", "-e", f"{base}^{{commit}}")
        except subprocess.CalledProcessError:
            print(f"error: commit {base} is not in this clone; fetch the history (git fetch --unshallow)")
            return 2
        found = check_range(base)
    for line in found:
        print(line, file=sys.stderr)
    if found and args.file:
        print(
            f"commit message kept in {args.file}; fix it and commit again (git commit -eF FILE)",
            file=sys.stderr,
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
