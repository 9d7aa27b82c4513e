"""mlstack: the shared core (configuration, data contract, storage, payload-log format) and the CLI."""

__version__ = "0.1.0"
