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


# the root options both CLIs (mlstack, kubectl-model) take
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
VersionOption = Annotated[
    bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
]


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


def settings_from(config: str | None, **options: Any) -> Settings:
    """The one settings loader, with a command's options as its explicit-argument layer.

    ``options`` have the settings' shape (``serving={"port": port}``); an option left at None was
    not given, so the environment, the ``--config`` file or the default decides that value.
    """
    return load_settings(config, **_given(options))


def _given(options: dict[str, Any]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            value = _given(value)
        if value is not None and value != {}:
            given[key] = value
    return given


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a typer app; every error becomes one ``error:`` line on stderr and its exit code.

    0 ok, 1 a check failed, 2 bad usage (unknown option, bad value, missing or unwritable file),
    130 interrupted. Click's own usage errors are reformatted to that one line too.
    """
    from typer._click import exceptions as click_errors  # typer 0.29 vendors click

    try:
        code = app(args=argv, standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # `mlstack data`: the group's help, as click does
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(2)
    except click_errors.UsageError as exc:
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except MlstackError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path the user named: missing, a directory, not writable
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug, not the user's fault: still one line, the traceback on request
        if _debug():
            raise
        text = " ".join(str(exc).split())
        typer.echo(
            f"error: unexpected {exc.__class__.__name__}: {text} (re-run with MLSTACK_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _debug() -> bool:
    try:
        return load_settings().debug
    except MlstackError:
        return False
