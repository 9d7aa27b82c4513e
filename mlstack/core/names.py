"""Names that become storage paths: validated against the rules their owners give, joined safely.

- An InferenceService name, a namespace and a KServe component are Kubernetes names: a DNS-1123
  label (lower-case alphanumerics and ``-``, starting and ending alphanumeric, at most 63
  characters), the rule of ``IsDNS1123Label`` in k8s.io/apimachinery
  ``pkg/util/validation/validation.go`` (kubernetes v1.34.0); InferenceService names are stricter
  still (DNS-1035), so every real one passes.
- A model version: MLflow registry versions are positive integers; ``VERSION`` also takes a tag
  such as ``v1.2`` or ``unknown`` (alphanumerics, ``.``, ``_``, ``-``, starting alphanumeric, at
  most 64 characters), so ``..``, ``/`` or an absolute path can never be one.

``safe_join`` is the last line of defence: it refuses any part that is empty, ``.``/``..`` or holds
a separator, and checks after resolution that the result is still inside the root (also for
``s3://`` keys), so no name, however it got here, builds a path outside the store.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mlstack.core import storage

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NameError_(ValueError):
    """A name that may not become part of a path; ``field`` says which one."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def check_label(value: str, field: str) -> str:
    """``value`` when it is a DNS-1123 label, else NameError_ naming the field."""
    if not isinstance(value, str) or len(value) > DNS1123_LABEL_MAX or not DNS1123_LABEL.match(value):
        raise NameError_(
            field,
            f"{field} {str(value)[:80]!r} is not a Kubernetes name (DNS-1123 label: lower-case "
            "letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
        )
    return value


def check_version(value: str, field: str = "model_version") -> str:
    """``value`` when it is a model version (an MLflow version or a simple tag), else NameError_."""
    if not isinstance(value, str) or not VERSION.match(value):
        raise NameError_(
            field,
            f"{field} {str(value)[:80]!r} is not a model version (letters, digits, '.', '_', '-', "
            "starting with a letter or digit, at most 64 characters)",
        )
    return value


def _check_part(part: str) -> None:
    if not part or part in (".", "..") or any(c in part for c in ("/", "\\", "\0")):
        raise NameError_("path", f"path part {part[:80]!r} may not be used in a storage path")


def safe_join(root: str, *parts: str) -> str:
    """``storage.join(root, *parts)``, refused (NameError_) when the result would leave ``root``."""
    for part in parts:
        _check_part(part)
    joined = storage.join(root, *parts)
    if storage.is_s3(root):
        base = posixpath.normpath(root.removeprefix("s3://").rstrip("/"))
        inside = posixpath.normpath(joined.removeprefix("s3://"))
        if not inside.startswith(base + "/"):
            raise NameError_("path", f"{joined} is outside the store {root}")
        return joined
    _, base = storage.filesystem(root)
    _, inside = storage.filesystem(joined)
    if not Path(inside).is_relative_to(Path(base)) or Path(inside) == Path(base):
        raise NameError_("path", f"{joined} is outside the store {root}")
    return joined
