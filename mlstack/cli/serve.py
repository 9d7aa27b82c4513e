"""`mlstack serve` (the KServe predictor runtime) and `mlstack sink` (the payload-log sink)."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.common import ConfigOption, settings_from
from mlstack.core.errors import UsageError

log = logging.getLogger(__name__)


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_name(name: str) -> None:
    """The model name is a URL path segment and an InferenceService name (DNS-1035 label)."""
    if not _NAME.match(name):
        raise UsageError(
            f"--name {name!r} must be 1-63 lower-case letters, digits or '-', starting and ending "
            "with a letter or digit (an InferenceService name)"
        )


def serve_cmd(
    name: Annotated[
        str, typer.Option("--name", help="Model name in the URL paths (the InferenceService name).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="MLflow model directory or models:/NAME@ALIAS URI (default: serving.model_dir, /mnt/models).",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="HTTP port, 1-65535 (default: serving.port, 8080)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Server processes (default: 1).")
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version", help="Version reported in every response (default: $MLSTACK_MODEL_VERSION)."
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="'lean' (default: our ASGI app, same protocols) or 'kserve' (stock ModelServer)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default: serving.host).")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve an mlstack model on KServe's v1 and v2 protocols (blocks until stopped)."""
    check_name(name)
    if server is not None and server not in ("lean", "kserve"):
        raise UsageError(f"--server must be 'lean' or 'kserve', not {server!r}")
    settings = settings_from(
        config,
        model_version=model_version,
        serving={"model_dir": model, "port": port, "workers": workers, "server": server, "host": host},
    )
    cfg = settings.serving
    server, uri, port, workers, host = cfg.server, cfg.model_dir, cfg.port, cfg.workers, cfg.host
    if not uri.startswith("models:/") and not Path(uri).exists():
        raise UsageError(f"model {uri} not found; pass --model DIR or --model models:/NAME@ALIAS")
    if server == "kserve" and workers > 1 and host != "0.0.0.0":
        raise UsageError(
            "--server kserve with --workers > 1 binds 0.0.0.0 only; use --host 0.0.0.0 or one worker"
        )
    # kserve parses sys.argv when imported; it must not see (and choke on) ours
    sys.argv = sys.argv[:1]
    model_version = settings.model_version
    if uri.startswith("models:/"):
        from mlstack.adapters import mlflow as mlflow_adapter

        loaded = mlflow_adapter.from_settings(settings).load_model(
            uri, name=name, version=model_version, engine=cfg.engine
        )
    else:
        from mlstack.core.model import load

        loaded = load(uri, name=name, version=model_version, engine=cfg.engine)
    log.info(
        "serving %s version %s with the %s server (engine %s) on %s:%d",
        name,
        loaded.version,
        server,
        loaded.engine,
        host,
        port,
    )
    if server == "kserve":
        from mlstack.serving.predictor import MlstackModel, run_kserve

        run_kserve(
            MlstackModel(name, uri, loaded.version, cfg.max_batch_rows, loaded=loaded),
            port,
            workers,
            cfg.threads,
            host=host,
            max_body_bytes=cfg.max_body_bytes,
            read_timeout=cfg.read_timeout_seconds,
            idle_timeout=cfg.idle_timeout_seconds,
        )
    else:
        from mlstack.serving.app import run_lean

        batching = (cfg.batch_max_rows, cfg.batch_max_wait_ms / 1000) if cfg.batching else None
        run_lean(
            loaded,
            host,
            port,
            workers,
            cfg.max_batch_rows,
            cfg.max_body_bytes,
            cfg.threads,
            batching,
            read_timeout=cfg.read_timeout_seconds,
            idle_timeout=cfg.idle_timeout_seconds,
        )


def sink_cmd(
    store: Annotated[
        str, typer.Option("--store", help="Payload-log store: a directory or s3://bucket/prefix.")
    ],
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="HTTP port, 1-65535 (default: sink.port, 8090)."),
    ] = None,
    wal_dir: Annotated[
        str | None,
        typer.Option("--wal-dir", help="Write-ahead log directory (default: $MLSTACK_HOME/sink-wal)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default: sink.host).")] = None,
    config: ConfigOption = None,
) -> None:
    """Receive KServe logger CloudEvents and store request/response pairs as partitioned Parquet."""
    import uvicorn

    from mlstack.serving.sink.app import app_from_settings
    from mlstack.serving.timeouts import protocol

    settings = settings_from(config, sink={"store": store, "port": port, "wal_dir": wal_dir, "host": host})
    cfg = settings.sink
    wal = cfg.wal_dir or str(settings.resolved_home / "sink-wal")
    log.info("sink storing to %s, WAL in %s", settings.payload_store, wal)
    uvicorn.run(
        app_from_settings(settings, settings.payload_store, wal),
        host=cfg.host,
        port=cfg.port,
        access_log=False,
        log_config=None,
        http=protocol(cfg.read_timeout_seconds),  # uvicorn's httptools + a read timeout
        timeout_keep_alive=cfg.idle_timeout_seconds,
    )


def register(app: typer.Typer) -> None:
    """Add `serve` and `sink` to the root command."""
    app.command("serve")(serve_cmd)
    app.command("sink")(sink_cmd)
