"""docs/cli.md, generated from the commands themselves (typer's click tree of both entry points).

``python tools/cli_reference.py`` rewrites docs/cli.md; ``--check`` only compares (exit 1 when it
differs). Every command, its help and every option with its help and default come from the code, so
the reference cannot drift from what ``--help`` prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "cli.md"
HEADER = """# Command reference

Generated from the commands (`python tools/cli_reference.py`; `tests/unit/test_reference_docs.py`
fails when this file and the code differ). `mlstack COMMAND --help` prints the same. Every command
exits 0 when it worked, 1 when a check failed, 2 on bad usage (one `error:` line on stderr).
"""


def _cell(text: str) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _default(param: Any) -> str:
    if param.required:
        return "required"
    value = param.default
    if value is None or value == () or getattr(param, "is_flag", False) and value is False:
        return ""
    return f"`{value}`"


def _command(command: Any, path: list[str], level: int) -> list[str]:
    lines = [f"{'#' * level} `{' '.join(path)}`", ""]
    if command.help:
        lines += [" ".join(command.help.split("\n\n")[0].split()), ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        lines += ["| argument or option | meaning | default |", "| --- | --- | --- |"]
        for param in params:
            if param.param_type_name == "argument":
                names = f"`{param.name.upper()}`"
            else:
                names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
            lines.append(f"| {names} | {_cell(param.help)} | {_default(param)} |")
        lines.append("")
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            lines += _command(sub, [*path, name], min(level + 1, 4))
    return lines


def render() -> str:
    """The whole reference: `mlstack` and `kubectl model`, every sub-command."""
    import typer

    from mlstack.cli import kubectl_model, main

    lines = [HEADER]
    for title, app in (("mlstack", main.app), ("kubectl model", kubectl_model.app)):
        lines += _command(typer.main.get_command(app), [title], 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when docs/cli.md differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(
                "error: docs/cli.md differs from the commands: run python tools/cli_reference.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
