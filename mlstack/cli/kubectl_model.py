"""``kubectl model``: canary lifecycle of mlstack InferenceServices (a kubectl plugin, ``kubectl-model``).

Wires ``mlstack.core.rollout`` (what to change), ``monitoring`` (whether the canary is good), the MLflow
registry (aliases) and the Kubernetes API (``mlstack.adapters.kube``). With ``-f FILE`` it works on a
manifest and prints the new object: no cluster, no registry writes (GitOps).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlstack.adapters import model_aliases
from mlstack.cli.common import (
    ConfigOption,
    VerboseOption,
    VersionOption,
    run_app,
    settings_from,
    setup_logging,
)
from mlstack.cli.kubectl_moves import CommandScope, Output, dump, execute
from mlstack.core import isvc, rollout
from mlstack.core.errors import CheckFailed, UsageError

app = typer.Typer(
    name="kubectl model",
    help="Canary lifecycle of mlstack InferenceServices: status, canary, promote, rollback, analyze.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


Name = Annotated[str, typer.Argument(help="InferenceService name.")]
Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the context's).")
]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context to use.")]
OutputOpt = Annotated[Output | None, typer.Option("--output", "-o", help="json | yaml | wide.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the patch(es) instead of sending them.")]
File = Annotated[
    Path | None,
    typer.Option(
        "--filename", "-f", help="Read the object from this manifest and print the new object (no cluster)."
    ),
]
Config = ConfigOption


def _controller(target: CommandScope, kube, name: str) -> dict:
    """Whether the rollout controller manages ``name`` (from its Lease; "-" for a manifest)."""
    from mlstack.core.errors import MlstackError
    from mlstack.serving.rollout_controller.lease import ownership

    if kube is None:
        return {"state": "-"}
    try:
        return ownership(kube.get_lease(target.settings.rollout.lease_name), name)
    except MlstackError as exc:  # e.g. no RBAC to read Leases: say so, the rest of the status stands
        return {"state": "unknown", "error": str(exc)}


def _status_row(state: rollout.CanaryState, obj: dict, wide: bool, controller: dict) -> dict:
    revs = state.revisions
    row: dict[str, object] = {
        "name": state.name,
        "phase": state.phase,
        "ready": revs.ready or "-",
        "champion": state.champion_version or "-",
        "challenger": state.challenger_version or "-",
        "canary%": "-" if state.percent is None else state.percent,
        "rolled-out": revs.latest_rolledout or "-",
        "latest-ready": revs.latest_ready or "-",
        "aliases": ",".join(f"{k}=v{v}" for k, v in sorted(state.aliases.items())) or "-",
        "controller": controller["state"],
    }
    if wide:
        row["previous-rolled-out"] = revs.previous_rolledout or "-"
        row["latest-created"] = revs.latest_created or "-"
        row["traffic"] = ",".join(f"{t.get('revisionName')}={t.get('percent')}%" for t in revs.traffic) or "-"
        row["storage-uri"] = isvc.model_spec(obj).get("storageUri")
    return row


@app.command()
def status(
    name: Name,
    namespace: Namespace = None,
    context: Context = None,
    output: OutputOpt = None,
    filename: File = None,
    config: Config = None,
) -> None:
    """Revisions, traffic %, model versions, readiness and MLflow aliases of one InferenceService."""
    target = CommandScope(name, namespace, context, output, False, filename, settings_from(config))
    obj, kube = target.load()
    state = rollout.state_of(obj, target.aliases(obj, kube))
    controller = _controller(target, kube, name)
    row = _status_row(state, obj, output == Output.wide, controller)
    if output == Output.wide and controller.get("holder"):
        row["controller-holder"] = controller["holder"]
    note = rollout.rollout_note(state)
    if output in (Output.json, Output.yaml):
        row["traffic"] = list(state.revisions.traffic)
        row["rollout"] = note or ("up to date" if state.revisions.has_status else "no status")
        row["rollout-controller"] = controller
        typer.echo(dump(row, output))
        return
    widths = {k: max(len(k), len(str(v))) for k, v in row.items()}
    typer.echo("  ".join(k.upper().ljust(widths[k]) for k in row))
    typer.echo("  ".join(str(v).ljust(widths[k]) for k, v in row.items()))
    if note:
        typer.echo(f"rolling out: {note}")


@app.command("canary")
def start_canary(
    name: Name,
    version: Annotated[
        str | None,
        typer.Option("--version", help="MLflow model version to canary (omit to change the percent)."),
    ] = None,
    percent: Annotated[
        int | None,
        typer.Option("--percent", help="Traffic % for the canary (default: canary.initial_percent)."),
    ] = None,
    storage_uri: Annotated[
        str | None,
        typer.Option("--storage-uri", help="Model location; overrides the MLflow lookup for --version."),
    ] = None,
    namespace: Namespace = None,
    context: Context = None,
    output: OutputOpt = None,
    dry_run: DryRun = False,
    filename: File = None,
    config: Config = None,
) -> None:
    """Start a canary of --version at --percent, or change the percent of the canary in flight."""
    if version is not None and not version.isdigit():
        raise UsageError(f"--version {version!r} must be an MLflow model version number, e.g. 3")
    if filename and version is not None and not storage_uri:
        # -f works on a manifest alone: no registry is read, no mlflow.db is created
        raise UsageError("-f needs --storage-uri with --version (the registry is not read in -f mode)")
    if percent is not None:
        rollout.check_percent(percent)  # before the settings, which would name canary.initial_percent
    settings = settings_from(config, canary={"initial_percent": percent})
    share = settings.canary.initial_percent
    target = CommandScope(name, namespace, context, output, dry_run, filename, settings)
    if version is None:
        if percent is None:
            raise UsageError("give --version to start a canary, or --percent to change the one in flight")
        execute(target, lambda obj, aliases: rollout.step(obj, aliases, share))
        return

    def build(obj: dict, aliases: dict[str, str]) -> rollout.Move:
        uri = storage_uri or model_aliases.storage_uri(
            settings, isvc.registered_model(obj), version, isvc.artifacts_destination(obj)
        )
        return rollout.start(obj, aliases, version, uri, share)

    execute(target, build)


@app.command()
def promote(
    name: Name,
    namespace: Namespace = None,
    context: Context = None,
    output: OutputOpt = None,
    dry_run: DryRun = False,
    filename: File = None,
    config: Config = None,
) -> None:
    """Send all traffic to the canary; MLflow champion -> its version, previous -> the old champion."""
    target = CommandScope(name, namespace, context, output, dry_run, filename, settings_from(config))
    execute(target, rollout.promote)


@app.command()
def rollback(
    name: Name,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; stored in the challenger's 'rejected' tag.")
    ] = "manual rollback",
    namespace: Namespace = None,
    context: Context = None,
    output: OutputOpt = None,
    dry_run: DryRun = False,
    filename: File = None,
    config: Config = None,
) -> None:
    """Pin traffic to the champion (percent 0), restore its spec, tag the challenger 'rejected'."""
    target = CommandScope(name, namespace, context, output, dry_run, filename, settings_from(config))
    execute(target, lambda obj, aliases: rollout.rollback(obj, aliases, reason))


@app.command()
def analyze(
    name: Name,
    apply: Annotated[
        bool, typer.Option("--apply", help="Promote or roll back when the verdict says so.")
    ] = False,
    namespace: Namespace = None,
    context: Context = None,
    output: OutputOpt = None,
    filename: File = None,
    config: Config = None,
) -> None:
    """Compare canary and primary (errors, latency, prediction shift, accuracy) and print the verdict."""
    from mlstack.adapters.kube import NotFound
    from mlstack.monitoring.canary.job import analyze_service

    settings = settings_from(config)
    target = CommandScope(name, namespace, context, output, False, filename, settings)
    try:
        obj, kube = target.load()
    except NotFound as exc:  # the CronJob before the first deploy: a success that judged nothing
        reason = f"nothing to do: {exc} (the first deploy creates it)"
        _report({"inference_service": name, "verdict": "none", "reasons": [reason]}, output)
        return
    state = rollout.state_of(obj, target.aliases(obj, kube))
    if state.phase != "canary":
        _report(
            {
                "inference_service": name,
                "verdict": "none",
                "reasons": [f"no canary in flight (phase {state.phase})"],
            },
            output,
        )
        return
    started = isvc.annotations_of(obj).get(isvc.ANN_STARTED_AT)
    since = (
        datetime.fromisoformat(started.replace("Z", "+00:00"))
        if started
        else datetime.now(UTC) - timedelta(hours=24)
    )
    analysis, json_path, md_path = analyze_service(
        settings,
        name,
        target.namespace or (obj.get("metadata") or {}).get("namespace", "default"),
        state.champion_version or "",
        state.challenger_version or "",
        state.primary_revision,
        state.canary_revision,
        since,
    )
    summary = {**analysis.to_dict(), "report": {"json": str(json_path), "markdown": str(md_path)}}
    move = None

    def unchanged(build):
        # the object is read again to apply: act only on the canary that was analysed
        def checked(current: dict, aliases: dict[str, str]) -> rollout.Move:
            if isvc.serving_version(current) != state.challenger_version:
                raise CheckFailed(
                    f"the canary of {name!r} changed during the analysis; not applying the verdict"
                )
            return build(current, aliases)

        return checked

    if apply and analysis.verdict == "promote":
        move, done = execute(target, unchanged(rollout.promote), quiet=True)
    elif apply and analysis.verdict == "rollback":
        reason = "canary analysis: " + "; ".join(analysis.reasons)
        move, done = execute(target, unchanged(lambda o, a: rollout.rollback(o, a, reason)), quiet=True)
    if move is not None:
        summary["applied"] = {"move": move.kind, "summary": move.summary, "registry": done}
    # with -f the new object owns stdout; the verdict goes to stderr
    _report(summary, output, err=bool(filename and move is not None))


def _report(summary: dict, output: Output | None, err: bool = False) -> None:
    if output in (Output.json, Output.yaml):
        typer.echo(dump(summary, output), err=err)
        return
    typer.echo(f"verdict: {summary['verdict']}", err=err)
    for reason in summary.get("reasons", []):
        typer.echo(f"  - {reason}", err=err)
    if "applied" in summary:
        typer.echo(f"applied: {summary['applied']['summary']}", err=err)
        for line in summary["applied"]["registry"]:
            typer.echo(f"  mlflow: {line}", err=err)
    if "report" in summary:
        typer.echo(f"report: {summary['report']['markdown']}", err=err)


@app.callback()
def _root(
    verbose: VerboseOption = False,
    _version: VersionOption = False,
) -> None:
    setup_logging(verbose)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
