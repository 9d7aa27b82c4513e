"""Reference tables are generated from the code and fail here when the checked-in copy differs.

Three references: the MLSTACK_* variables (docs/configuration.md, from the Settings model), the
chart's values (helm/mlstack/README.md, from the ``## @param`` comments in values.yaml) and the
commands (docs/cli.md, from the typer apps). ``make docs`` regenerates all three.
"""

from __future__ import annotations

import sys

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit
sys.path.insert(0, str(ROOT / "tools"))
import chart_readme  # noqa: E402
import cli_reference  # noqa: E402
import settings_table  # noqa: E402


def test_every_setting_says_what_it_is():
    from mlstack.core.settings import Settings
    from mlstack.core.settings_doc import _leaf_fields, env_name

    missing = [
        env_name(path) for path, field in _leaf_fields(Settings) if not (field.description or "").strip()
    ]
    assert not missing, f"settings without a description (Field(..., description=...)): {missing}"


def test_the_variables_table_is_the_settings_model():
    assert settings_table.render() == (ROOT / "docs" / "configuration.md").read_text(), (
        "run: python tools/settings_table.py"
    )


def test_every_chart_value_is_documented_and_the_chart_readme_is_generated():
    readme, problems = chart_readme.generate()
    assert problems == []
    assert readme == (ROOT / "helm" / "mlstack" / "README.md").read_text(), (
        "run: python tools/chart_readme.py"
    )


def test_a_value_without_a_param_and_a_param_without_a_value_are_named():
    text = "## @param a.b The b\n## @param a.gone Gone\na:\n  b: 1\n  c: {d: 2}\n"
    sections, skipped = chart_readme.parse(text)
    assert chart_readme.problems(yaml.safe_load(text), sections, skipped) == [
        "@param a.gone: no such value in values.yaml",
        "a.c.d: no ## @param (or ## @skip) documents it",
    ]


def test_the_command_reference_is_the_commands():
    assert cli_reference.render() == (ROOT / "docs" / "cli.md").read_text(), (
        "run: python tools/cli_reference.py"
    )


def test_every_option_has_help_text():
    import typer

    from mlstack.cli import kubectl_model, main

    def walk(command, path):
        for param in command.params:
            if not (param.help or "").strip():
                yield f"{path} {param.name}"
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    silent = [*walk(typer.main.get_command(main.app), "mlstack")]
    silent += walk(typer.main.get_command(kubectl_model.app), "kubectl model")
    assert not silent, f"options without help: {silent}"
