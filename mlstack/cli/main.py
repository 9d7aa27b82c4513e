"""The `mlstack` command: one entry point, a sub-command per capability."""

from __future__ import annotations

import typer

from mlstack.cli import batch, config, data, demo, drift, payloads, pipeline, rollout, serve, stream
from mlstack.cli.common import VerboseOption, VersionOption, run_app, setup_logging

app = typer.Typer(
    name="mlstack",
    help="Kubernetes-native MLOps stack: train, register, serve, monitor. Runs locally without a cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(pipeline.app, name="pipeline")
serve.register(app)
app.command("stream")(stream.stream_cmd)
app.command("stream-store")(stream.stream_store_cmd)
app.command("drift")(drift.drift)
app.command("demo")(demo.demo)
app.add_typer(batch.app, name="batch")
app.add_typer(config.app, name="config")
app.add_typer(payloads.app, name="payloads")
app.add_typer(rollout.app, name="rollout")


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
