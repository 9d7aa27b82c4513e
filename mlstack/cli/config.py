"""`mlstack config`: the effective settings and where each value came from; the variables it reads."""

from __future__ import annotations

from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json

app = typer.Typer(
    help="Configuration: show the effective settings, list the MLSTACK_* variables.",
    no_args_is_help=True,
)


@app.command("show")
def show_cmd(
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {key: {value, source}} as one JSON object.")
    ] = False,
) -> None:
    """Print every setting as the training pipeline sees it, with its source (argument > environment > file > shipped > default)."""
    from mlstack.core.settings_doc import effective
    from mlstack.pipelines.training import DEFAULT_CONFIG

    rows = effective(config, shipped=DEFAULT_CONFIG)
    if as_json:
        print_json({key: {"value": value, "source": source} for key, value, source in rows})
        return
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        typer.echo(f"{key:<{width}}  {value!r}  ({source})")


@app.command("env")
def env_cmd() -> None:
    """Print the Markdown table of every MLSTACK_* variable (docs/configuration.md embeds this output)."""
    from mlstack.core.settings_doc import env_table

    typer.echo(env_table(), nl=False)
