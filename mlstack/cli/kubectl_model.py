"""``kubectl model``: canary lifecycle of mlstack InferenceServices (a kubectl plugin, ``kubectl-model``).

Wires ``serving.canary`` (what to change), ``monitoring`` (whether the canary is good), the MLflow
registry (aliases) and the Kubernetes API (``mlstack.cli.kube``). With ``-f FILE`` it works on a
manifest and prints the new object: no cluster, no registry writes (GitOps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from mlstack.cli import model_aliases
from mlstack.cli.common import run_app, settings_from, setup_logging
from mlstack.core import isvc
from mlstack.core.errors import UsageError
from mlstack.core.settings import Settings
from serving import canary

app = typer.Typer(
    name="kubectl model",
    help="Canary lifecycle of mlstack InferenceServices: status, canary, promote, rollback, analyze.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Output(StrEnum):
    json = "json"
    yaml = "yaml"
    wide = "wide"


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
Config = Annotated[
    str | None, typer.Option("--config", help="mlstack config YAML (default: $MLSTACK_CONFIG).")
]


@dataclass
class Target:
    """Where the object comes from and where results go."""

    name: str
    namespace: str | None
    context: str | None
    output: Output | None
    dry_run: bool
    filename: Path | None
    settings: Settings

    def load(self) -> tuple[dict, object | None]:
        if self.filename:
            return _read_manifest(self.filename, self.name), None
        from mlstack.cli.kube import Kube

        kube = Kube(self.context, self.namespace)
        self.namespace = kube.namespace
        return kube.get(self.name), kube

    def aliases(self, obj: dict, kube) -> dict[str, str]:
        # a manifest is worked on without the registry: nothing is read or written there
        return {} if kube is None else model_aliases.aliases(self.settings, isvc.registered_model(obj))


def _read_manifest(path: Path, name: str) -> dict:
    if not path.is_file():
        raise UsageError(f"file not found: {path}")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from exc
    found = [
        d
        for d in docs
        if d.get("kind") == "InferenceService" and (d.get("metadata") or {}).get("name") == name
    ]
    if not found:
        raise UsageError(f"{path} holds no InferenceService named {name!r}")
    return found[0]


_SERVER_FIELDS = ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields", "selfLink")


def _manifest(obj: dict) -> dict:
    """The object as a manifest to apply: no status, no server-managed metadata."""
    manifest = {k: v for k, v in obj.items() if k != "status"}
    manifest["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return manifest


def _dump(obj, output: Output | None) -> str:
    if output == Output.json:
        return json.dumps(obj, indent=2)
    return yaml.safe_dump(obj, sort_keys=False).rstrip("\n")


def _execute(
    target: Target, build: Callable[[dict, dict[str, str]], canary.Move], quiet: bool = False
) -> tuple[canary.Move, list[str]]:
    """Build a move from the current object and apply it (or print it); returns it and the registry changes."""
    obj, kube = target.load()
    move = build(obj, target.aliases(obj, kube))
    for warning in move.warnings:
        typer.echo(f"warning: {warning}", err=True)
    notes = [op.describe() for op in move.alias_ops]
    if kube is None:
        typer.echo(_dump(_manifest(move.result(obj)), target.output))
        if notes:
            typer.echo("registry moves to make once applied: " + "; ".join(notes), err=True)
        return move, []
    if target.dry_run:
        typer.echo(_dump(move.patches[0] if len(move.patches) == 1 else move.patches, target.output))
        if notes:
            typer.echo("would then move in MLflow: " + "; ".join(notes), err=True)
        return move, []
    result = obj
    for index, patch in enumerate(move.patches):
        if index == 0:  # optimistic concurrency: refuse if someone changed the object since we read it
            patch = isvc.merge_patch(
                patch, {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
            )
        result = kube.patch(target.name, patch)
    done = model_aliases.apply(target.settings, move.alias_ops)
    if quiet:
        pass
    elif target.output in (Output.json, Output.yaml):
        typer.echo(_dump(result, target.output))
    else:
        typer.echo(f"{move.kind}: {move.summary}")
        for line in done:
            typer.echo(f"  mlflow: {line}")
    return move, done


def _status_row(state: canary.CanaryState, obj: dict, wide: bool) -> dict:
    revs = state.revisions
    row = {
        "name": state.name,
        "phase": state.phase,
        "ready": revs.ready or "-",
        "champion": state.champion_version or "-",
        "challenger": state.challenger_version or "-",
        "canary%": "-" if state.percent is None else state.percent,
        "rolled-out": revs.latest_rolledout or "-",
        "latest-ready": revs.latest_ready or "-",
        "aliases": ",".join(f"{k}=v{v}" for k, v in sorted(state.aliases.items())) or "-",
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
    target = Target(name, namespace, context, output, False, filename, settings_from(config))
    obj, kube = target.load()
    state = canary.state_of(obj, target.aliases(obj, kube))
    row = _status_row(state, obj, wide=output == Output.wide)
    if output in (Output.json, Output.yaml):
        row["traffic"] = list(state.revisions.traffic)
        typer.echo(_dump(row, output))
        return
    widths = {k: max(len(k), len(str(v))) for k, v in row.items()}
    typer.echo("  ".join(k.upper().ljust(widths[k]) for k in row))
    typer.echo("  ".join(str(v).ljust(widths[k]) for k, v in row.items()))


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
    settings = settings_from(config)
    share = percent if percent is not None else settings.canary.initial_percent
    target = Target(name, namespace, context, output, dry_run, filename, settings)
    if version is None:
        if percent is None:
            raise UsageError("give --version to start a canary, or --percent to change the one in flight")
        _execute(target, lambda obj, aliases: canary.step(obj, aliases, share))
        return

    def build(obj: dict, aliases: dict[str, str]) -> canary.Move:
        uri = storage_uri or model_aliases.storage_uri(settings, isvc.registered_model(obj), version)
        return canary.start(obj, aliases, version, uri, share)

    _execute(target, build)


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
    target = Target(name, namespace, context, output, dry_run, filename, settings_from(config))
    _execute(target, canary.promote)


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
    target = Target(name, namespace, context, output, dry_run, filename, settings_from(config))
    _execute(target, lambda obj, aliases: canary.rollback(obj, aliases, reason))


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
    from monitoring.canary_job import analyze_service

    settings = settings_from(config)
    target = Target(name, namespace, context, output, False, filename, settings)
    obj, kube = target.load()
    state = canary.state_of(obj, target.aliases(obj, kube))
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
    if apply and analysis.verdict == "promote":
        move, done = _execute(target, canary.promote, quiet=True)
    elif apply and analysis.verdict == "rollback":
        reason = "canary analysis: " + "; ".join(analysis.reasons)
        move, done = _execute(target, lambda o, a: canary.rollback(o, a, reason), quiet=True)
    if move is not None:
        summary["applied"] = {"move": move.kind, "summary": move.summary, "registry": done}
    # with -f the new object owns stdout; the verdict goes to stderr
    _report(summary, output, err=bool(filename and move is not None))


def _report(summary: dict, output: Output | None, err: bool = False) -> None:
    if output in (Output.json, Output.yaml):
        typer.echo(_dump(summary, output), err=err)
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
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    setup_logging(verbose)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
