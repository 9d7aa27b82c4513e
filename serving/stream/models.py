"""Follows a model's MLflow aliases in the background and hands the loop a ready ``Routing``.

The canary state is the registry's: ``champion`` and ``challenger`` aliases, and the challenger's
share in its ``canary_percent`` version tag (``kubectl model canary --percent`` writes it through
``mlstack.core.rollout``; without it, ``canary.initial_percent``). A promote moves ``champion`` and
removes ``challenger``; a rollback removes ``challenger``: either way the next poll routes every key
to the champion, with no restart. A new version is downloaded and loaded here, off the loop's path;
the loop switches only once it is ready, between two micro-batches.

Warm restart: each version's model directory is kept under ``<home>/stream-models/<model>/`` with
the last routing (``routing.json``). A restarted scorer (a SIGKILLed pod) starts from there at once,
loading only the compiled engine when the version has one (no MLflow or scikit-learn import), and
reads the registry in the background as usual; a version without a compiled artifact loads its
scikit-learn pipeline either way.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlstack.adapters import model_aliases
from mlstack.core.model import load
from mlstack.core.rollout import CANARY_PERCENT_TAG
from mlstack.core.settings import Settings
from mlstack.serving.scoring import Scorer
from mlstack.serving.stream.router import Routing, Served, Variant

log = logging.getLogger(__name__)

PERCENT_TAG = CANARY_PERCENT_TAG


class ModelCache:
    """Model directories of the versions served, on local disk, and the last routing."""

    def __init__(self, settings: Settings, model: str, engine: str):
        self.settings, self.model, self.engine = settings, model, engine
        self.root = settings.resolved_home / "stream-models" / model

    def directory(self, version: str) -> Path:
        return self.root / f"v{version}"

    def scorer(self, version: str) -> Scorer:
        """Load ``version`` (downloading it once; a compiled version opens without MLflow or sklearn)."""
        target = self.directory(version)
        if not (target / "MLmodel").is_file():
            partial = self.root / f".v{version}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            local = model_aliases.download_version(self.settings, self.model, version, str(partial))
            shutil.rmtree(target, ignore_errors=True)
            Path(local).rename(target)
            shutil.rmtree(partial, ignore_errors=True)
        loaded = load(str(target), self.model, version, engine=self.engine)
        return Scorer(loaded)

    def remember(self, routing: Routing) -> None:
        state = {"champion": routing.champion.version, "percent": routing.percent}
        if routing.challenger is not None:
            state["challenger"] = routing.challenger.version
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / ".routing.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.root / "routing.json")

    def last_routing(self) -> dict[str, Any] | None:
        path = self.root / "routing.json"
        try:
            state: Any = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        champion = state.get("champion") if isinstance(state, dict) else None
        challenger = state.get("challenger") if isinstance(state, dict) else None
        if not isinstance(champion, str) or not champion or not isinstance(challenger, (str, type(None))):
            # a damaged or hand-edited file: starting from it would score with no model and send
            # every event to the dead letters; read the registry instead
            log.warning("%s names no champion version; reading the registry", path)
            return None
        versions = [champion, challenger]
        if not all((self.directory(v) / "MLmodel").is_file() for v in versions if v):
            return None
        kept: dict[str, Any] = state
        return kept


def percent_of(tags: dict[str, str], default: int) -> int:
    """The challenger's share from its ``canary_percent`` tag; ``default`` when absent or not 0-100."""
    raw = tags.get(PERCENT_TAG)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        log.warning("tag %s=%r is not a whole number; using %d%%", PERCENT_TAG, raw, default)
        return default
    return value if 0 <= value <= 100 else default


class ModelWatcher:
    """Polls the registry every ``poll_seconds``; ``current()`` is the routing to score the next batch with."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        poll_seconds: float,
        default_percent: int,
        cache: ModelCache | None = None,
        aliases: Callable[[], dict[str, str]] | None = None,
        tags: Callable[[str], dict[str, str]] | None = None,
    ):
        self.model, self.poll_seconds, self.default_percent = model, poll_seconds, default_percent
        self.cache = cache or ModelCache(settings, model, settings.serving.engine)
        self._aliases = aliases or (lambda: model_aliases.aliases(settings, model))
        self._tags = tags or (lambda version: model_aliases.version_tags(settings, model, version))
        self._routing: Routing | None = None
        self._scorers: dict[str, Scorer] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.last_error: str | None = None

    def current(self) -> Routing | None:
        return self._routing

    def warm_start(self) -> bool:
        """Serve the last routing from the local cache at once; False when there is none."""
        state = self.cache.last_routing()
        if state is None:
            return False
        try:
            versions = [v for v in (state.get("champion"), state.get("challenger")) if v]
            self._scorers = {v: self.cache.scorer(v) for v in versions}
        except Exception as exc:  # a damaged cache: start cold
            log.warning("cannot start from the local model cache (%s); reading the registry", exc)
            self._scorers = {}
            return False
        self._publish(state.get("champion"), state.get("challenger"), int(state.get("percent") or 0))
        log.info("warm start from the local cache: %s", self._routing.describe() if self._routing else "")
        return True

    def refresh(self) -> bool:
        """One poll of the registry; True when the routing changed."""
        self.polls += 1
        aliases = self._aliases()
        champion, challenger = aliases.get("champion"), aliases.get("challenger")
        if champion is None:
            if self._routing is None:
                log.warning("model %s has no champion alias yet; waiting", self.model)
            return False
        if challenger == champion:
            challenger = None
        percent = percent_of(self._tags(challenger), self.default_percent) if challenger else 0
        for version in (champion, challenger):
            if version and version not in self._scorers:
                log.info("loading %s version %s", self.model, version)
                self._scorers[version] = self.cache.scorer(version)
        return self._publish(champion, challenger, percent)

    def _publish(self, champion: str | None, challenger: str | None, percent: int) -> bool:
        if champion is None:
            return False
        routing = Routing(
            self.model,
            Served(Variant.CHAMPION, champion, self._scorers[champion]),
            Served(Variant.CHALLENGER, challenger, self._scorers[challenger]) if challenger else None,
            percent,
        )
        if self._routing is not None and self._routing.key() == routing.key():
            return False
        self._routing = routing  # one reference swap: the loop reads it between batches
        self._scorers = {v: s for v, s in self._scorers.items() if v in (champion, challenger)}
        self.cache.remember(routing)
        log.info("routing: %s", routing.describe())
        return True

    def run(self) -> None:
        if self.polls == 0 and self._routing is not None:
            # warm start: the loop is scoring already; let it have the process while it starts up
            # (the first poll imports MLflow, seconds of CPU)
            self._stop.wait(self.poll_seconds)
        while not self._stop.is_set():
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:  # the registry is outside: keep serving the routing we have
                self.last_error = str(exc)
                log.warning(
                    "cannot read the registry for %s (%s); keeping %s",
                    self.model,
                    exc,
                    self._routing.describe() if self._routing else "no routing",
                )
            self._stop.wait(self.poll_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="registry-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait_ready(self, timeout: float) -> Routing | None:
        deadline = time.monotonic() + timeout
        while self._routing is None and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.1)
        return self._routing
