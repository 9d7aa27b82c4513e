"""How ``kubectl model`` moves run: load the object (cluster or manifest), build the move, send or print it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml

from mlstack.adapters import model_aliases
from mlstack.cli.manifest_file import ManifestFile
from mlstack.core import isvc, rollout
from mlstack.core.settings import Settings

if TYPE_CHECKING:  # the kubernetes client is imported only when a command talks to a cluster
    from mlstack.adapters.kube import Kube


FIELD_MANAGER = "kubectl-model"


class Output(StrEnum):
    json = "json"
    yaml = "yaml"
    wide = "wide"


@dataclass
class CommandScope:
    """Where the object comes from and where results go."""

    name: str
    namespace: str | None
    context: str | None
    output: Output | None
    dry_run: bool
    filename: Path | None
    settings: Settings
    manifest: ManifestFile | None = None  # the -f file, read by load

    def load(self) -> tuple[dict, Kube | None]:
        if self.filename:
            self.manifest = ManifestFile.read(self.filename, self.name, self.namespace)
            return self.manifest.object, None
        from mlstack.adapters.kube import Kube

        # named in managedFields: the rollout controller leaves a fresh change by kubectl-model alone
        kube = Kube(self.context, self.namespace, field_manager=FIELD_MANAGER)
        self.namespace = kube.namespace
        return kube.get(self.name), kube

    def aliases(self, obj: dict, kube) -> dict[str, str]:
        # a manifest is worked on without the registry: nothing is read or written there
        return {} if kube is None else model_aliases.aliases(self.settings, isvc.registered_model(obj))


_SERVER_FIELDS = ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields", "selfLink")


def _manifest(obj: dict) -> dict:
    """The object as a manifest to apply: no status, no server-managed metadata."""
    manifest = {k: v for k, v in obj.items() if k != "status"}
    manifest["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return manifest


def print_manifest(target: CommandScope, obj: dict) -> None:
    """Print the -f file with the InferenceService replaced by ``obj`` (as a manifest to apply)."""
    assert target.manifest is not None  # load() read it
    typer.echo(target.manifest.render(_manifest(obj), target.output))


def dump(obj, output: Output | None) -> str:
    if output == Output.json:
        return json.dumps(obj, indent=2)
    return yaml.safe_dump(obj, sort_keys=False).rstrip("\n")


def execute(
    target: CommandScope, build: Callable[[dict, dict[str, str]], rollout.Move], quiet: bool = False
) -> tuple[rollout.Move, list[str]]:
    """Build a move from the current object and apply it (or print it); returns it and the registry changes."""
    obj, kube = target.load()
    move = build(obj, target.aliases(obj, kube))
    for warning in move.warnings:
        typer.echo(f"warning: {warning}", err=True)
    notes = [op.describe() for op in move.alias_ops]
    if not move.patches:  # a no-op move: nothing to send, nothing to move in the registry
        typer.echo(f"{move.kind}: {move.summary}", err=target.output in (Output.json, Output.yaml))
        if kube is None:
            print_manifest(target, obj)
        elif target.output in (Output.json, Output.yaml):
            typer.echo(dump(obj, target.output))
        return move, []
    if kube is None:
        print_manifest(target, move.result(obj))
        if notes:
            typer.echo("registry moves to make once applied: " + "; ".join(notes), err=True)
        return move, []
    if target.dry_run:
        typer.echo(dump(move.patches[0] if len(move.patches) == 1 else move.patches, target.output))
        if notes:
            typer.echo("would then move in MLflow: " + "; ".join(notes), err=True)
        return move, []
    result = kube.apply_move(move, obj)
    done = model_aliases.apply(target.settings, move.alias_ops)
    if quiet:
        pass
    elif target.output in (Output.json, Output.yaml):
        typer.echo(dump(result, target.output))
    else:
        typer.echo(f"{move.kind}: {move.summary}")
        for line in done:
            typer.echo(f"  mlflow: {line}")
    return move, done
