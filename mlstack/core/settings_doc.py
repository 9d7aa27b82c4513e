"""What the settings are and where each value came from, rendered from the model itself.

``env_table`` is docs/configuration.md's list of ``MLSTACK_*`` variables (a test compares the two, so the
the guide cannot drift from ``Settings``); ``effective`` backs ``mlstack config show``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlstack.core.settings import ENV_PREFIX, Settings, config_layers, load_settings

README_START = "<!-- mlstack config env: start -->"
README_END = "<!-- mlstack config env: end -->"


def _leaf_fields(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaf_fields(annotation, (*prefix, name))
        else:
            yield (*prefix, name), field


def env_name(path: tuple[str, ...] | list[str]) -> str:
    """``("training", "seed")`` -> ``MLSTACK_TRAINING__SEED``."""
    return ENV_PREFIX + "__".join(path).upper()


def env_table() -> str:
    """A Markdown table of every ``MLSTACK_*`` variable: name, default, meaning."""
    defaults = Settings.model_construct().model_dump(mode="json")
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for path, field in _leaf_fields(Settings):
        value: Any = defaults
        for part in path:
            value = value[part]
        shown = "" if value is None else json.dumps(value) if not isinstance(value, str) else value
        shown = shown.replace("|", "\\|")
        lines.append(f"| `{env_name(path)}` | `{shown}` | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat |= _flatten(value, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): data}


def _provides(layer: dict[str, Any], key: str) -> bool:
    """Whether ``layer`` sets ``key`` itself or a mapping/value above it."""
    node: Any = layer
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, dict):
            return True
    return True


def effective(
    path: str | Path | None = None, shipped: str | Path | None = None, **overrides: Any
) -> list[tuple[str, Any, str]]:
    """(key, value, source) for every leaf of the effective settings, source highest first wins."""
    settings = load_settings(path, shipped, **overrides)
    layers = config_layers(path, shipped, **overrides)
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")).items():
        source = "default"
        for name, layer in reversed(layers):
            if _provides(layer, key):
                source = env_name(key.split(".")) if name == "environment" else name
                break
        rows.append((key, value, source))
    return rows
