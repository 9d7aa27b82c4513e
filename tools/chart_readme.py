"""The chart's values table, generated from the ``## @param`` comments in ``values.yaml``.

Follows Bitnami's readme-generator-for-helm conventions (github.com/bitnami/readme-generator-for-helm
README, "Metadata"): ``## @section Title`` starts a table; ``## @param key.path [modifiers] text``
documents a value (modifiers: ``array``, ``object``, ``string``, ``nullable``, ``default: X``); a
param of an object or a list covers everything under it; ``## @skip key.path`` covers a value that
is not listed. Every value must be covered and every param must name a value.

``python tools/chart_readme.py`` rewrites the table between the markers in ``helm/mlstack/README.md``;
``--check`` only compares (exit 1 with what differs). PyYAML is the only dependency.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "mlstack"
START = "<!-- values table: start (python tools/chart_readme.py) -->"
END = "<!-- values table: end -->"
_SECTION = re.compile(r"^\s*##\s+@section\s+(?P<title>.+?)\s*$")
_PARAM = re.compile(r"^\s*##\s+@param\s+(?P<key>\S+)(?:\s+\[(?P<mods>[^\]]*)\])?\s*(?P<text>.*?)\s*$")
_SKIP = re.compile(r"^\s*##\s+@skip\s+(?P<key>\S+)")


@dataclass
class Param:
    key: str
    description: str
    modifiers: list[str] = field(default_factory=list)


@dataclass
class Section:
    title: str
    params: list[Param] = field(default_factory=list)


def parse(text: str) -> tuple[list[Section], list[str]]:
    """(sections with their params in file order, skipped keys) from the values file's comments."""
    sections = [Section("Parameters")]
    skipped = []
    for line in text.splitlines():
        if match := _SECTION.match(line):
            sections.append(Section(match["title"]))
        elif match := _PARAM.match(line):
            mods = [m.strip() for m in (match["mods"] or "").split(",") if m.strip()]
            sections[-1].params.append(Param(match["key"], match["text"], mods))
        elif match := _SKIP.match(line):
            skipped.append(match["key"])
    return [s for s in sections if s.params], skipped


def _leaves(value: Any, prefix: str = "") -> list[str]:
    """Every key path down to a scalar, an empty mapping or a list (a list is one value)."""
    if isinstance(value, dict) and value:
        paths = []
        for key, child in value.items():
            paths += _leaves(child, f"{prefix}.{key}" if prefix else str(key))
        return paths
    return [prefix]


def _lookup(values: dict, key: str) -> tuple[bool, Any]:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def problems(values: dict, sections: list[Section], skipped: list[str]) -> list[str]:
    """Values without a param, params without a value, keys documented twice."""
    keys = [p.key for s in sections for p in s.params]
    found = [f"@param {k}: no such value in values.yaml" for k in keys + skipped if not _lookup(values, k)[0]]
    found += [f"@param {k}: documented twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    covering = keys + skipped
    for leaf in _leaves(values):
        if not any(leaf == k or leaf.startswith(k + ".") for k in covering):
            found.append(f"{leaf}: no ## @param (or ## @skip) documents it")
    return found


def _shown(value: Any, modifiers: list[str]) -> str:
    for mod in modifiers:
        if mod.startswith("default:"):
            return mod.split(":", 1)[1].strip()
    if value is None:
        return "nil" if "nullable" in modifiers else '""'
    if isinstance(value, str):
        return f'"{value}"' if value == "" or "string" in modifiers else value
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else json.dumps(value)


def render(values: dict, sections: list[Section]) -> str:
    """The Markdown tables, one per section."""
    out = ["## Parameters", ""]
    for section in sections:
        out += [f"### {section.title}", "", "| Name | Description | Value |", "| --- | --- | --- |"]
        for param in section.params:
            _, value = _lookup(values, param.key)
            shown = _shown(value, param.modifiers).replace("|", "\\|")
            text = param.description.replace("|", "\\|")
            out.append(f"| `{param.key}` | {text} | `{shown}` |")
        out.append("")
    return "\n".join(out)


def generate(chart: Path = CHART) -> tuple[str, list[str]]:
    """(the README with a fresh table, problems); the README's text outside the markers is kept."""
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text) or {}
    sections, skipped = parse(text)
    readme = (chart / "README.md").read_text()
    if START not in readme or END not in readme:
        return readme, [f"{chart / 'README.md'} lacks the markers {START} ... {END}"]
    head, rest = readme.split(START, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{START}\n{render(values, sections)}{END}{tail}", problems(values, sections, skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when README.md differs")
    args = parser.parse_args(argv)
    readme, found = generate()
    current = (CHART / "README.md").read_text()
    if args.check and readme != current:
        found.append("helm/mlstack/README.md differs from values.yaml: run python tools/chart_readme.py")
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if not args.check and readme != current:
        (CHART / "README.md").write_text(readme)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
