"""The stream scorer's local model cache: a damaged routing.json never starts scoring without a model.

A scorer restarted with a cached routing.json that names no champion used to warm-start "ready" with
no routing, so every event it consumed was dead-lettered as model_error and its offset committed.
"""

from __future__ import annotations

import json

import pytest

from mlstack.core.settings import load_settings
from mlstack.serving.stream.models import ModelCache, ModelWatcher

pytestmark = pytest.mark.unit


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path))
    cache = ModelCache(load_settings(), "loans", "auto")
    for version in ("1", "2"):
        cache.directory(version).mkdir(parents=True)
        (cache.directory(version) / "MLmodel").write_text("flavors: {}\n")
    return cache


def _write(cache: ModelCache, text: str) -> None:
    (cache.root / "routing.json").write_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"percent": 10}',
        '{"champion": null, "challenger": "2", "percent": 10}',
        '{"champion": ""}',
        '{"champion": 1}',
        '{"champion": "1", "challenger": 2}',
        "[]",
        '"1"',
        "{not json",
    ],
)
def test_a_routing_file_without_a_champion_is_a_cold_start(cache, text):
    _write(cache, text)
    assert cache.last_routing() is None
    watcher = ModelWatcher(cache.settings, "loans", 5, 10, cache=cache, aliases=lambda: {}, tags=lambda v: {})
    assert watcher.warm_start() is False
    assert watcher.current() is None


def test_a_routing_file_naming_cached_versions_is_kept(cache):
    state = {"champion": "1", "challenger": "2", "percent": 20}
    _write(cache, json.dumps(state))
    assert cache.last_routing() == state
    _write(cache, json.dumps({"champion": "1", "challenger": "3", "percent": 20}))
    assert cache.last_routing() is None  # v3 is not in the cache: read the registry
