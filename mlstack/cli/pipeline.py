"""`mlstack pipeline`: run the training pipeline locally, compile it, submit it to Kubeflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json
from mlstack.core.errors import CheckFailed, MlstackError, UsageError
from mlstack.core.settings import load_settings

app = typer.Typer(
    help="The training pipeline: run locally, compile, submit to Kubeflow.", no_args_is_help=True
)

ContractOption = Annotated[
    Path | None, typer.Option("--contract", help="Data contract YAML (default: the generator's contract).")
]


def _settings(config: str | None):
    """The user file (--config or $MLSTACK_CONFIG) overlaid on the shipped training.yaml, key by key."""
    from mlstack.pipelines.training import DEFAULT_CONFIG

    return load_settings(config, shipped=DEFAULT_CONFIG)


@app.command("run")
def run_cmd(
    local: Annotated[
        bool, typer.Option("--local", help="Run through kfp.local on this machine (required for now).")
    ] = False,
    data: Annotated[
        str | None,
        typer.Option("--data", help="CSV/Parquet path or s3:// URI (default: 50k generated rows)."),
    ] = None,
    contract: ContractOption = None,
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")
    ] = False,
) -> None:
    """Run ingest → validate → train → evaluate → gate → register; exit 1 when validation or a gate fails."""
    from mlstack.pipelines.training import run_training_locally

    try:
        if not local:
            raise UsageError("only --local runs here; use 'mlstack pipeline submit --host URL' for Kubeflow")
        settings = _settings(config)
        if not as_json:
            typer.echo(
                f"training {settings.training.model_name} (MLflow: {settings.resolved_tracking_uri})",
                err=True,
            )
        result = run_training_locally(settings, data, contract, show_progress=not as_json)
    except MlstackError as exc:
        if as_json:  # the promise: exactly one JSON object on stdout, on failure too
            print_json({"error": str(exc), "exit_code": exc.exit_code})
        raise
    if as_json:
        print_json(result)
    else:
        gates = result["gates"]
        typer.echo(
            f"run {result['run_id']}: gates {'passed' if gates['passed'] else 'FAILED'}; "
            f"roc_auc {result['metrics']['roc_auc']:.4f}, pr_auc {result['metrics']['pr_auc']:.4f}"
        )
        for reason in gates["reasons"]:
            typer.echo(f"  - {reason}")
        if result["model_version"]:
            typer.echo(
                f"registered {result['model_name']} version {result['model_version']} as {', '.join(result['aliases'])}"
            )
    if not result["gates"]["passed"]:
        raise CheckFailed(
            "quality gates failed: " + "; ".join(r for r in result["gates"]["reasons"] if r.endswith("FAIL"))
        )


@app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for the IR YAML.")] = Path("build/pipelines"),
) -> None:
    """Compile the training pipeline to KFP IR YAML (upload it in the Kubeflow UI or with `submit`)."""
    from mlstack.pipelines.training import compile_training

    path = compile_training(out)
    typer.echo(str(path))


@app.command("submit")
def submit_cmd(
    host: Annotated[
        str, typer.Option("--host", help="KFP API URL, e.g. http://localhost:8888 (make pipeline-ui).")
    ],
    data: Annotated[
        str, typer.Option("--data", help="Data URI the cluster can read (s3://...).")
    ] = "s3://mlstack-data/train.parquet",
    contract: ContractOption = None,
    config: ConfigOption = None,
    tracking_uri: Annotated[
        str, typer.Option("--tracking-uri", help="MLflow URL as seen from inside the cluster.")
    ] = "http://mlstack-mlflow.mlstack.svc.cluster.local:5000",  # the chart's Service (release mlstack)
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Cron (5 fields) for a recurring run instead of one run.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ids as JSON.")] = False,
) -> None:
    """Upload a new pipeline version to a KFP server and start a run (or a recurring run with --schedule)."""
    from mlstack.pipelines.training import submit_training

    result = submit_training(_settings(config), host, data, contract, tracking_uri, schedule)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")
