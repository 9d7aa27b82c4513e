"""`mlstack demo`: train → register → serve champion and challenger → split traffic → drift → verdict."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json, settings_from
from mlstack.core import generator
from mlstack.core.errors import UsageError


def demo(
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="Smaller data and traffic (what the tests run; timings in docs/demo.md)."
        ),
    ] = False,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running", help="Leave MLflow UI, Evidently UI and both predictors up (Ctrl-C stops)."
        ),
    ] = False,
    scenario: Annotated[
        str, typer.Option("--scenario", help="Drift injected halfway through the traffic.")
    ] = "covariate_shift",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run the whole loop on this machine (no cluster); writes $MLSTACK_HOME/demo/report.html."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from mlstack.demo.run import run_demo

    if scenario not in generator.SCENARIOS or scenario == "none":
        raise UsageError(f"--scenario must be one of {', '.join(generator.SCENARIOS[1:])}")
    import logging
    import os

    # the steps speak through the progress lines; library chatter stays out unless asked for (-v)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    console = Console(stderr=True)
    progress = Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    )

    def bar(total: int):
        task = progress.add_task("requests", total=total)
        return lambda n: progress.advance(task, n)

    started = time.monotonic()

    def show(summary: dict) -> None:
        summary["seconds"] = round(time.monotonic() - started, 1)
        progress.stop()
        if as_json:
            print_json(summary)
        else:
            console.print(summary_table(summary))
        if keep_running:
            for name, url in summary.get("urls", {}).items():
                console.print(f"{name}: {url}")
            console.print("Ctrl-C stops them.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass

    with progress:
        run_demo(
            settings_from(config),
            fast=fast,
            keep_running=keep_running,
            scenario=scenario,
            say=lambda text: console.print(f"[bold]▸[/] {text}") if not as_json else None,
            progress_factory=bar,
            on_done=show,
        )


def summary_table(summary: dict):
    """The terminal summary: versions, traffic, drift, verdict, aliases, report path."""
    from rich.table import Table

    table = Table(title=f"mlstack demo: {summary['model_name']} ({summary['seconds']} s)")
    table.add_column("what")
    table.add_column("result")
    for v in summary["versions"]:
        table.add_row(
            f"version {v['version']} ({v['data']})",
            f"roc_auc {v['metrics']['roc_auc']:.4f}, registered as {v['aliases']}",
        )
    for version, role, count in summary["traffic"]["by_version"]:
        table.add_row(f"traffic v{version} ({role})", f"{count} of {summary['requests']} requests")
    detected = [w["label"] for w in summary["drift_windows"] if w.get("drift_detected")]
    table.add_row(
        "drift windows",
        f"{len(detected)} of {len(summary['drift_windows'])} drifted: {', '.join(detected) or 'none'}",
    )
    table.add_row(
        "canary verdict",
        f"{summary['analysis']['verdict']}: " + "; ".join(summary["analysis"]["reasons"][:2]),
    )
    table.add_row("aliases before", str(summary["aliases_before"]))
    table.add_row("aliases after", str(summary["aliases_after"]))
    table.add_row("report", summary["report"])
    return table
