"""Tests are named for what they protect: no file, function, docstring or comment names a review finding."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# "Finding 4", "findings 1, 2", "finding_6_", "small_findings": a ticket's number, not a behaviour
TICKET = re.compile(r"\bfindings?[ _]\d|_findings?\b|\btest_findings?_", re.IGNORECASE)


def test_no_test_names_a_finding():
    named = [str(path.relative_to(TESTS)) for path in TESTS.rglob("*.py") if TICKET.search(path.name)]
    mentions = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if TICKET.search(line)
    ]
    assert (named, mentions) == ([], [])
