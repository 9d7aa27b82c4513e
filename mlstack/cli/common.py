"""What every command shares: settings loading, logging setup, error-to-exit-code mapping, JSON output."""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer

from mlstack.core.errors import MlstackError
from mlstack.core.settings import Settings, load_settings

log = logging.getLogger("mlstack")

# the one --config option every command shares
ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="Settings YAML overlaying the defaults key by key (default: $MLSTACK_CONFIG).",
    ),
]


def package_version() -> str:
    """The installed mlstack version (what `--version` prints)."""
    try:
        return version("mlstack")
    except PackageNotFoundError:  # a source checkout without an install
        from mlstack import __version__

        return __version__


def version_callback(value: bool) -> None:
    """An eager ``--version``: print ``NAME VERSION`` and exit 0."""
    if value:
        typer.echo(f"mlstack {package_version()}")
        raise typer.Exit(0)


def setup_logging(verbose: bool = False, settings: Settings | None = None) -> None:
    """Readable text on a terminal, one JSON object per line in a container (no TTY)."""
    settings = settings or load_settings()
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level)
    handler = logging.StreamHandler(sys.stderr)
    text = settings.log_format == "text" or (settings.log_format == "auto" and sys.stderr.isatty())
    if text:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic", "urllib3", "botocore", "git", "httpx", "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def settings_from(config: str | None) -> Settings:
    return load_settings(config)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def run_app(app: typer.Typer) -> None:
    """Run a typer app; a user-caused error becomes one line on stderr and its exit code."""
    try:
        app(standalone_mode=True)
    except MlstackError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not the user's fault: still one line, the traceback on request
        if _debug():
            raise
        typer.echo(
            f"error: unexpected {exc.__class__.__name__}: {exc} (re-run with MLSTACK_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(1)


def _debug() -> bool:
    try:
        return load_settings().debug
    except MlstackError:
        return False
