"""`mlstack batch`: score a table with a registered model locally (kfp.local) or on a schedule on KFP."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json, settings_from
from mlstack.core.errors import CheckFailed, UsageError

app = typer.Typer(
    help="Batch scoring: validate and score a table with a registered model.", no_args_is_help=True
)

ModelOption = Annotated[
    str, typer.Option("--model", help="Registered model: NAME (= NAME@champion), NAME@ALIAS or NAME/VERSION.")
]
InputOption = Annotated[
    str,
    typer.Option("--input", help="Table to score: .csv/.parquet file or Parquet directory, local or s3://."),
]
OutputOption = Annotated[
    str,
    typer.Option("--output", help="Predictions Parquet (local or s3://); may contain {date} and {run_id}."),
]
RejectsOption = Annotated[
    str | None,
    typer.Option("--rejects", help="Rejected rows Parquet (default: next to --output, .rejects.parquet)."),
]
ChunkOption = Annotated[
    int | None,
    typer.Option(
        "--chunk-rows",
        min=1,
        help="Rows per chunk; memory grows with it (default: settings batch.chunk_rows).",
    ),
]


def _arguments(settings, model, input_uri, output, rejects) -> dict:
    from mlstack.components.batch_io import default_rejects_uri, expand_uri
    from mlstack.components.batch_score import refuse_overlap
    from mlstack.core.model import model_uri

    model_uri(model)  # a malformed spec fails here, before any pipeline starts
    for name, uri in (("--output", output), ("--rejects", rejects or "")):
        if "{" in expand_uri(uri, "x"):
            raise UsageError(f"{name} may contain only the placeholders {{date}} and {{run_id}}")
    out = expand_uri(output, "run")
    refuse_overlap(input_uri, out, expand_uri(rejects, "run") if rejects else default_rejects_uri(out))
    return {
        "model": model,
        "input_uri": input_uri,
        "output_uri": output,
        "rejects_uri": rejects or "",
        "chunk_rows": settings.batch.chunk_rows,
    }


def _preflight(input_uri: str, output: str, rejects: str | None) -> None:
    """What would fail the run, checked before the pipeline starts: the input file, its columns,
    the output folders (the scoring step checks again where it runs)."""
    from mlstack.components import batch_preflight as preflight
    from mlstack.components.batch_io import default_rejects_uri, expand_uri, input_schema

    preflight.check_input(input_uri)
    preflight.check_columns(input_schema(input_uri), input_uri)
    out = expand_uri(output, "preflight")
    for uri in (out, expand_uri(rejects, "preflight") if rejects else default_rejects_uri(out)):
        preflight.check_writable(uri)


@app.command("run")
def run_cmd(
    model: ModelOption,
    input_uri: InputOption,
    output: OutputOption,
    local: Annotated[
        bool, typer.Option("--local", help="Run the pipeline here with kfp.local (no cluster).")
    ] = False,
    rejects: RejectsOption = None,
    chunk_rows: ChunkOption = None,
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print model_version, scored, rejected, output, rejects as JSON.")
    ] = False,
) -> None:
    """Score a table once: resolve the model, reject rows that break its contract, write predictions with lineage."""
    from mlstack.adapters import mlflow as mlflow_adapter
    from mlstack.pipelines.batch_scoring import run_batch_locally

    if not local:
        raise UsageError(
            "batch run needs --local (kfp.local); for a cluster use 'mlstack batch submit --host URL'"
        )
    settings = settings_from(config, batch={"chunk_rows": chunk_rows})
    arguments = _arguments(settings, model, input_uri, output, rejects)
    _preflight(input_uri, output, rejects)
    # an unknown model or alias: one clear line, not a failed task
    mlflow_adapter.from_settings(settings).resolve(model)
    summary = run_batch_locally(settings, arguments, show_progress=not as_json)
    if as_json:
        print_json(
            {key: summary[key] for key in ("model_version", "scored", "rejected", "output", "rejects")}
        )
    else:
        typer.echo(
            f"scored {summary['scored']} of {summary['rows']} rows with {summary['model_name']} "
            f"v{summary['model_version']} on {summary['engine']} ({summary['rejected']} rejected) "
            f"-> {summary['output']}" + (f"; rejects -> {summary['rejects']}" if summary["rejected"] else "")
        )
    # which engine answered, and why (stderr: --json keeps stdout for the documented keys)
    typer.echo(f"engine: {summary['engine']}: {summary['engine_reason']}", err=True)
    for warning in summary.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    if summary["rows"] and not summary["scored"]:
        raise CheckFailed(
            f"every one of the {summary['rows']} rows was rejected (reasons in {summary['rejects']}): "
            "the input does not fit the model's contract"
        )


@app.command("submit")
def submit_cmd(
    host: Annotated[str, typer.Option("--host", help="KFP API endpoint, e.g. http://localhost:8888.")],
    model: ModelOption,
    input_uri: InputOption,
    output: OutputOption,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule", help="Cron, 5 fields, UTC, e.g. '0 2 * * *' (default: settings batch.schedule)."
        ),
    ] = None,
    rejects: RejectsOption = None,
    chunk_rows: ChunkOption = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="MLflow URL as seen from the cluster (default: settings tracking_uri)."
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the created ids as JSON.")] = False,
) -> None:
    """Upload the batch pipeline to KFP and create a recurring run (use {date} in --output for one file per run)."""
    from mlstack.pipelines.batch_scoring import submit_batch
    from mlstack.pipelines.submit import kfp_cron

    settings = settings_from(
        config, tracking_uri=tracking_uri, batch={"chunk_rows": chunk_rows, "schedule": schedule}
    )
    arguments = _arguments(settings, model, input_uri, output, rejects)
    arguments["tracking_uri"] = settings.tracking_uri or ""
    schedule = settings.batch.schedule
    kfp_cron(schedule)
    if not host.startswith(("http://", "https://")):
        raise UsageError(f"--host {host!r} must be an http(s):// URL of the KFP API")
    from mlstack.core import storage

    if not storage.is_s3(input_uri) or not storage.is_s3(output):
        typer.echo(
            "warning: --input/--output are not s3:// URIs; pods on a cluster cannot see local paths", err=True
        )
    with contextlib.redirect_stdout(sys.stderr):  # the KFP client prints links; keep stdout for --json
        result = submit_batch(settings, host, arguments, schedule)
    if as_json:
        print_json(result)
    else:
        typer.echo(
            f"recurring run {result['recurring_run_id']} ({result['schedule']}) of pipeline version "
            f"{result['version_id']} in experiment {settings.batch.kfp_experiment}"
        )
