"""Unknown keys in user-written mappings: found before validation, reported with the closest valid key.

A typo in a config or contract must be an error, never a silently ignored value. ``unknown_keys``
walks a mapping against a pydantic model tree; ``reject_unknown`` turns the first finding into one
sentence naming the source (a file, ``environment``, ``argument``), the key and a suggestion.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the BaseModel class an annotation holds, whether it is a list of them)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model, is_list = _models_in(arg)
            if model is not None:
                return model, is_list
        return None, False
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        model, _ = _models_in(args[0]) if args else (None, False)
        return model, model is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def unknown_keys(model: type[BaseModel], data: Any, prefix: str = "") -> list[tuple[str, str | None]]:
    """Every key of ``data`` that ``model`` does not define, dotted, with the closest valid key."""
    if not isinstance(data, dict):
        return []
    found: list[tuple[str, str | None]] = []
    fields = model.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            found.append((dotted, f"{prefix}{close[0]}" if close else None))
            continue
        child, is_list = _models_in(fields[key].annotation)
        if child is None:
            continue
        if is_list and isinstance(value, list):
            for index, item in enumerate(value):
                found += unknown_keys(child, item, f"{dotted}[{index}].")
        elif not is_list:
            found += unknown_keys(child, value, f"{dotted}.")
    return found


def describe_unknown(source: str, key: str, closest: str | None) -> str:
    """``FILE: unknown key 'a.b' (did you mean 'a.c'?)``."""
    hint = f" (did you mean {closest!r}?)" if closest else ""
    return f"{source}: unknown key {key!r}{hint}"


def reject_unknown(model: type[BaseModel], data: Any, source: str, error: type[Exception]) -> None:
    """Raise ``error`` naming the source, the first unknown key and the closest valid key."""
    found = unknown_keys(model, data)
    if found:
        key, closest = found[0]
        more = f"; {len(found) - 1} more unknown key(s)" if len(found) > 1 else ""
        raise error(describe_unknown(source, key, closest) + more)
