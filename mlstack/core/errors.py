"""Errors a user can cause; the CLI prints their message in one line and exits with ``exit_code``."""


class MlstackError(Exception):
    """A failure the user can act on: the message says what is wrong and what to do."""

    exit_code = 1


class UsageError(MlstackError):
    """Bad input: a missing file, a malformed config, an unknown option value (exit 2)."""

    exit_code = 2


class CheckFailed(MlstackError):
    """A check ran and said no: validation, a quality gate, a schema mismatch (exit 1)."""

    exit_code = 1
