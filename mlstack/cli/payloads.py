"""`mlstack payloads`: housekeeping of the payload-log store (the chart runs `compact` hourly)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json, settings_from

app = typer.Typer(help="The payload-log store: compact small files.", no_args_is_help=True)


@app.command("compact")
def compact_cmd(
    store: Annotated[
        str | None, typer.Option("--store", help="Payload-log store (dir or s3://); default: sink.store.")
    ] = None,
    min_age_hours: Annotated[
        float | None,
        typer.Option(
            "--min-age-hours",
            min=0.0,
            help="Compact partitions whose hour ended at least this long ago (default: sink.compact_min_age_hours, 2).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Merge the small files of every closed partition (predictions, feedback) into one file each.

    Rows are not changed; an interrupted run is finished by the next. Exit 0 when every partition
    was compacted, 1 when some could not be (each named on stderr; the others were compacted).
    """
    from mlstack.core.compaction import compact

    settings = settings_from(config)
    target = store or settings.payload_store
    hours = settings.sink.compact_min_age_hours if min_age_hours is None else min_age_hours
    result = compact(target, min_age=timedelta(hours=hours))
    if as_json:
        print_json({"store": target, "min_age_hours": hours} | result.to_dict())
    else:
        typer.echo(
            f"compacted {result.partitions} partition(s) of {target}: {result.files_before} files -> "
            f"{result.files_after}, {result.rows} rows; {result.open_partitions} partition(s) younger "
            f"than {hours:g} h left for a later run",
            err=True,
        )
    for error in result.errors:
        typer.echo(f"error: {error}", err=True)
    if result.errors:
        raise typer.Exit(1)
