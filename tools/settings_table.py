"""docs/configuration.md's table of MLSTACK_* variables, generated from the Settings model.

``python tools/settings_table.py`` rewrites the table between the markers (what ``mlstack config env``
prints); ``--check`` only compares (exit 1 when it differs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"


def render() -> str:
    from mlstack.core.settings_doc import README_END, README_START, env_table

    text = DOC.read_text()
    head, rest = text.split(README_START, 1)
    return f"{head}{README_START}\n{env_table()}{README_END}{rest.split(README_END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the table differs")
    args = parser.parse_args(argv)
    text = render()
    if text == DOC.read_text():
        return 0
    if args.check:
        print(
            "error: docs/configuration.md differs from the settings: run python tools/settings_table.py",
            file=sys.stderr,
        )
        return 1
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
