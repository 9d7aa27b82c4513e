"""``mlstack drift``: the drift job (run by the CronJob every 15 minutes, or by hand)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json, settings_from


def drift(
    model: Annotated[str, typer.Option("--model", help="Registered model (= inference service) name.")],
    version: Annotated[
        str | None, typer.Option("--version", help="Model version to judge; default: the champion.")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Payload-log window ending now, e.g. 15m, 1h, 2d.")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference", help="Reference CSV/Parquet; default: the version's training snapshot in MLflow."
        ),
    ] = None,
    current: Annotated[
        str | None,
        typer.Option("--current", help="Current CSV/Parquet instead of the payload-log window."),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Payload-log store (dir or s3://); default from settings.")
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace", help="Evidently workspace (dir or s3://); default $MLSTACK_HOME/evidently."
        ),
    ] = None,
    pushgateway: Annotated[
        str | None,
        typer.Option("--pushgateway", help="Pushgateway URL; default from settings (unset = no push)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Judge the recent inputs of one model version against its reference.

    Exit 0 with status ok, insufficient_data, or nothing_to_do (no --version, --reference or
    --current, and the registry has no champion yet: the CronJob before the first deploy); 1 when
    the data does not match the contract;
    2 when the reference cannot be found or an option is wrong; 3 when the verdict was computed
    and printed but the Pushgateway could not take it.
    """
    from mlstack.adapters import mlflow as mlflow_adapter
    from mlstack.monitoring.drift import job as drift_job
    from mlstack.monitoring.drift.inputs import parse_window

    settings = settings_from(
        config,
        sink={"store": store},
        drift={"workspace": workspace, "window": window, "pushgateway": pushgateway},
    )
    drift_config = settings.drift
    result = drift_job.run(
        model,
        version,
        drift_config,
        registry=mlflow_adapter.from_settings(settings),
        store=settings.payload_store,
        workspace_uri=drift_config.workspace or str(settings.resolved_home / "evidently"),
        window=parse_window(drift_config.window),
        reference_uri=reference,
        current_uri=current,
        pushgateway=drift_config.pushgateway,
    )
    if as_json:
        print_json(result)
    else:
        typer.echo(_summary(result))
    if result.get("published") is False:
        typer.echo(f"warning: {result['publish_error']}", err=True)
        raise typer.Exit(drift_job.PUBLISH_FAILED_EXIT)


def _summary(result: dict) -> str:
    from mlstack.monitoring.drift.metrics import NOTHING_TO_DO_STATUS, OK_STATUS

    if result["status"] == NOTHING_TO_DO_STATUS:
        return f"{result['model']}: {result['message']}"
    head = f"{result['model']} version {result['version']}: {result['rows']} rows"
    if result["status"] != OK_STATUS:
        return f"{head}; INSUFFICIENT DATA — {result['message']}"
    lines = [
        f"{head}; drift {'DETECTED' if result['drift_detected'] else 'not detected'} "
        f"(drifted share {result['drifted_share']:.2f})"
    ]
    for name, entry in result["features"].items():
        flags = [
            flag
            for flag, on in (("drift", entry["drifted"]), ("missingness", entry["missing_drifted"]))
            if on
        ]
        score = "   n/a" if entry["score"] is None else f"{entry['score']:.4f}"
        lines.append(f"  {name:32s} {entry['method']:14s} {score}  {' '.join(flags)}")
    prediction = result.get("prediction_drift")
    if prediction:
        lines.append(
            f"  prediction drift on {prediction['column']} ({prediction['method']}): {prediction['score']:.4f}"
            f"{'  drift' if prediction['drifted'] else ''}"
        )
    for column, status in (result.get("outputs") or {}).items():
        if status != "judged":
            lines.append(f"  output {column}: {status}")
    perf = result.get("performance") or {}
    if perf.get("online"):
        lines.append(
            f"  accuracy online {perf['online']['accuracy']:.4f} vs offline {perf['offline']['accuracy']:.4f}"
            f"{' — DEGRADED' if perf['degraded'] else ''}"
        )
    read = result.get("payload_read") or {}
    if read.get("unreadable_files") or read.get("invalid_values"):
        lines.append(
            f"  payload log: {read.get('unreadable_files', 0)} unreadable file(s) skipped, "
            f"values made missing: {read.get('invalid_values') or {}}"
        )
    if result.get("report"):
        lines.append(f"  report: {result['report']}")
    return "\n".join(lines)
