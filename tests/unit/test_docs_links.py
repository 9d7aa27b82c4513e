"""The README stays a front page and every relative link in the docs reaches a file that exists."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [path for path in listed if not path.startswith("bench/.venvs/")]


def test_readme_first_screen_is_short_and_names_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 60, f"README.md has {len(lines)} lines; guides belong in docs/"
    first_screen = "\n".join(lines[:15])
    assert "make demo" in first_screen and "make test" in first_screen


def test_every_relative_link_resolves():
    broken = []
    for path in markdown_files():
        source = ROOT / path
        for target in LINK.findall(source.read_text()):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            file_part = target.split("#", 1)[0]
            if not (source.parent / file_part).resolve().exists():
                broken.append(f"{path}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_every_guide_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"docs/{p.name}" not in readme]
    assert not unlinked, f"guides the README does not link: {unlinked}"
