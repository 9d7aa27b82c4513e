"""`mlstack stream`: score feature events from Kafka with the served model, exactly once by default."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from mlstack.cli.common import ConfigOption, settings_from


def stream_cmd(
    model: Annotated[
        str | None,
        typer.Option("--model", help="Registered model to serve; follows its champion/challenger aliases."),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", help="Kafka host:port[,...] (stream.kafka.bootstrap_servers)."),
    ] = None,
    input_topic: Annotated[
        str | None, typer.Option("--input-topic", help="Feature events (default: <model>.features).")
    ] = None,
    output_topic: Annotated[
        str | None, typer.Option("--output-topic", help="Predictions (default: <model>.predictions).")
    ] = None,
    dlq_topic: Annotated[
        str | None, typer.Option("--dlq-topic", help="Dead letters (default: <model>.dlq).")
    ] = None,
    at_least_once: Annotated[
        bool,
        typer.Option(
            "--at-least-once", help="Commit offsets after delivery instead of in a transaction (faster)."
        ),
    ] = False,
    batch_max_events: Annotated[
        int | None,
        typer.Option("--batch-max-events", min=1, help="Events per micro-batch at most (default 2000)."),
    ] = None,
    batch_max_wait_ms: Annotated[
        float | None,
        typer.Option("--batch-max-wait-ms", min=0, help="How long a micro-batch fills up (default 10)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Payload store: a directory or s3:// prefix (default: sink.store)."),
    ] = None,
    store_writer: Annotated[
        bool | None,
        typer.Option(
            "--store-writer/--no-store-writer", help="Write payload rows to the store in this process."
        ),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option("--instance-id", help="Static member id (default: the host name, the pod's)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535, help="/metrics port (0: none; default 9108)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Score feature events from Kafka: predictions, dead letters and payload rows, exactly once."""
    from mlstack.serving.stream.app import run_stream

    guarantee: Literal["at_least_once"] | None = "at_least_once" if at_least_once else None
    settings = settings_from(
        config,
        stream={
            "model": model,
            "input_topic": input_topic,
            "output_topic": output_topic,
            "dlq_topic": dlq_topic,
            "guarantee": guarantee,
            "batch_max_events": batch_max_events,
            "batch_max_wait_ms": batch_max_wait_ms,
            "store": store,
            "store_writer": store_writer,
            "instance_id": instance_id,
            "metrics_port": metrics_port,
            "kafka": {"bootstrap_servers": bootstrap_servers},
        },
    )
    raise typer.Exit(run_stream(settings))


def stream_store_cmd(
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Registered model whose payload topic to store (default: training.model_name)."
        ),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", help="Kafka host:port[,...] (stream.kafka.bootstrap_servers)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Payload store: a directory or s3:// prefix (default: sink.store)."),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="The scorer's instance id (default: the host name, the pod's); member <id>.store.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535, help="/metrics port (0: none; default 9109)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the stream scorer's payload rows to the store, exactly once, in a process of its own.

    The chart runs it beside `mlstack stream --no-store-writer`, so flushes never pause scoring.
    """
    from mlstack.serving.stream.app import run_store_writer

    settings = settings_from(
        config,
        stream={
            "model": model,
            "store": store,
            "instance_id": instance_id,
            "store_metrics_port": metrics_port,
            "kafka": {"bootstrap_servers": bootstrap_servers},
        },
    )
    raise typer.Exit(run_store_writer(settings))
