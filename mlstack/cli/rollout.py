"""`mlstack rollout`: MLflow aliases drive InferenceServices (the controller, its webhook, a dry plan)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, print_json, settings_from
from mlstack.core.errors import CheckFailed, UsageError

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Registry-driven rollouts: champion/challenger aliases in MLflow move traffic (docs/rollouts.md).",
    no_args_is_help=True,
)


@app.command("controller")
def controller_cmd(
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="HTTP port (default: rollout.port, 8095)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default: rollout.host).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the rollout controller: Lease, periodic reconcile, MLflow webhook receiver, /metrics."""
    import uvicorn

    from mlstack.serving.rollout_controller.app import build_app
    from mlstack.serving.rollout_controller.controller import Controller

    settings = settings_from(config, rollout={"host": host, "port": port})
    controller = Controller(settings)
    uvicorn.run(
        build_app(controller),
        host=settings.rollout.host,
        port=settings.rollout.port,
        access_log=False,
        log_config=None,
    )


@app.command("register-webhook")
def register_cmd(
    url: Annotated[
        str | None,
        typer.Option("--url", help="Where MLflow should POST (default: rollout.webhook_url)."),
    ] = None,
    test: Annotated[
        bool, typer.Option("--test/--no-test", help="Have MLflow send a test event to the URL and report it.")
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Create or update the controller's webhook in MLflow (needs MLflow admin credentials)."""
    from mlstack.adapters import mlflow_webhooks

    settings = settings_from(config, rollout={"webhook_url": url})
    cfg = settings.rollout
    target = cfg.webhook_url
    if not target:
        raise UsageError("give --url (the controller's /webhooks/mlflow address) or set rollout.webhook_url")
    if not cfg.webhook_secret or not cfg.webhook_secret.get_secret_value():
        raise UsageError("set MLSTACK_ROLLOUT__WEBHOOK_SECRET: the same secret the controller verifies with")
    done = mlflow_webhooks.ensure(settings, cfg.webhook_name, target, cfg.webhook_secret.get_secret_value())
    typer.echo(f"webhook {cfg.webhook_name!r} {done.action}: {target} (id {done.webhook_id})")
    if not test:
        return
    delivered, what = mlflow_webhooks.send_test_event(settings, done.webhook_id)
    if not delivered:
        raise CheckFailed(
            f"MLflow could not deliver a test event to {target}: {what}; check that the controller runs and "
            "that MLflow may reach it (docs/rollouts.md: MLflow settings)"
        )
    typer.echo(f"test event delivered: {what}")


@app.command("plan")
def plan_cmd(
    name: Annotated[str, typer.Argument(help="InferenceService name.")],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Namespace (default: rollout.namespace, else the context's)."),
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context to use.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Print what the controller would do to NAME now (reads the cluster and MLflow, changes nothing)."""
    from datetime import UTC, datetime

    from mlstack.adapters import model_aliases
    from mlstack.adapters.kube import Kube
    from mlstack.core import isvc
    from mlstack.serving.rollout_controller.plan import foreign_change_age, plan
    from mlstack.serving.rollout_controller.reconciler import FIELD_MANAGER

    settings = settings_from(config, rollout={"namespace": namespace})
    kube = Kube(context, settings.rollout.namespace)
    obj = kube.get(name)
    model = isvc.registered_model(obj)
    aliases = model_aliases.current_aliases(settings, model)
    decided = plan(
        obj,
        aliases,
        initial_percent=settings.canary.initial_percent,
        foreign_change_age=foreign_change_age(obj, FIELD_MANAGER, datetime.now(UTC)),
        grace_seconds=settings.rollout.grace_seconds,
    )
    out = {
        "inference_service": name,
        "model": model,
        "aliases": aliases,
        "action": decided.action.value,
        "reason": decided.reason,
        "version": decided.version,
        "percent": decided.percent,
    }
    if as_json:
        print_json(out)
        return
    typer.echo(f"{name} ({model}): {decided.action.value}: {decided.reason}")
