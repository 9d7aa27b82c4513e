"""`mlstack serve` (the KServe predictor runtime) and `mlstack sink` (the payload-log sink)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.common import settings_from
from mlstack.core.errors import UsageError

log = logging.getLogger(__name__)

ConfigOption = Annotated[
    str | None, typer.Option("--config", help="Settings YAML (default $MLSTACK_CONFIG).")
]


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
        int | None, typer.Option("--port", help="HTTP port (default: serving.port, 8080).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Server processes (default: 1).")
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version", envvar="MLSTACK_MODEL_VERSION", help="Version reported in every response."
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
    settings = settings_from(config)
    cfg = settings.serving
    server = server or cfg.server
    if server not in ("lean", "kserve"):
        raise UsageError(f"--server must be 'lean' or 'kserve', not {server!r}")
    uri = model or cfg.model_dir
    if not uri.startswith("models:/") and not Path(uri).exists():
        raise UsageError(f"model {uri} not found; pass --model DIR or --model models:/NAME@ALIAS")
    port = port or cfg.port
    workers = workers or cfg.workers
    # kserve parses sys.argv when imported; it must not see (and choke on) ours
    sys.argv = sys.argv[:1]
    from mlstack.core.model import load

    loaded = load(
        uri, name=name, version=model_version, tracking_uri=settings.resolved_tracking_uri, engine=cfg.engine
    )
    log.info(
        "serving %s version %s with the %s server (engine %s) on %s:%d",
        name,
        loaded.version,
        server,
        loaded.engine,
        cfg.host,
        port,
    )
    if server == "kserve":
        from serving.predictor import MlstackModel, run_kserve

        run_kserve(
            MlstackModel(name, uri, loaded.version, cfg.max_batch_rows, loaded=loaded),
            port,
            workers,
            cfg.threads,
        )
    else:
        from serving.app import run_lean

        batching = (cfg.batch_max_rows, cfg.batch_max_wait_ms / 1000) if cfg.batching else None
        run_lean(
            loaded,
            host or cfg.host,
            port,
            workers,
            cfg.max_batch_rows,
            cfg.max_body_bytes,
            cfg.threads,
            batching,
        )


def sink_cmd(
    store: Annotated[
        str, typer.Option("--store", help="Payload-log store: a directory or s3://bucket/prefix.")
    ],
    port: Annotated[int | None, typer.Option("--port", help="HTTP port (default: sink.port, 8090).")] = None,
    wal_dir: Annotated[
        str | None,
        typer.Option("--wal-dir", help="Write-ahead log directory (default: $MLSTACK_HOME/sink-wal)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default: sink.host).")] = None,
    config: ConfigOption = None,
) -> None:
    """Receive KServe logger CloudEvents and store request/response pairs as partitioned Parquet."""
    import uvicorn

    from serving.sink import Sink
    from serving.sink_app import build_sink_app

    settings = settings_from(config)
    cfg = settings.sink
    wal = wal_dir or cfg.wal_dir or str(settings.resolved_home / "sink-wal")
    sink = Sink(
        store, wal, cfg.flush_rows, cfg.flush_seconds, cfg.pair_timeout_seconds, cfg.dedup_hours * 3600
    )
    log.info("sink storing to %s, WAL in %s", store, wal)
    uvicorn.run(
        build_sink_app(sink, cfg.max_event_bytes),
        host=host or cfg.host,
        port=port or cfg.port,
        access_log=False,
        log_config=None,
    )


def register(app: typer.Typer) -> None:
    """Add `serve` and `sink` to the root command."""
    app.command("serve")(serve_cmd)
    app.command("sink")(sink_cmd)
