"""Which variant scores an event: the canary's share of keys, chosen by a stable hash of the key.

The same canary state as an InferenceService's (``mlstack.core.rollout``): a champion, perhaps a
challenger, and the challenger's percent. A key goes to the challenger when its bucket
(CRC-32 of the key bytes, mod 100) is below the percent, so the same key always meets the same
version while the percent stands, and raising the percent only moves keys towards the challenger.
An event without a key is bucketed by its coordinates (stable across replays of the same offset).

A ``Routing`` is immutable: the registry watcher (``models``) builds a new one when the aliases
move, and the loop takes it between micro-batches, so every event of a batch (one transaction)
meets one routing - a promote or rollback lands at a batch boundary, losing or doubling nothing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum

from mlstack.serving.scoring import Scorer


class Variant(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


@dataclass(frozen=True, slots=True)
class Served:
    """One model version the scorer serves, and as which variant."""

    variant: Variant
    version: str
    scorer: Scorer


def bucket(key: bytes | None, partition: int, offset: int) -> int:
    """0-99, stable for a key (or, without one, for the event's coordinates)."""
    data = key if key else f"{partition}:{offset}".encode()
    return zlib.crc32(data) % 100


@dataclass(frozen=True)
class Routing:
    """The canary state one micro-batch is scored under."""

    model: str
    champion: Served
    challenger: Served | None = None
    percent: int = 0  # share of keys (0-100) the challenger takes when there is one

    def route(self, key: bytes | None, partition: int, offset: int) -> Served:
        if self.challenger is None or self.percent <= 0:
            return self.champion
        return self.challenger if bucket(key, partition, offset) < self.percent else self.champion

    def describe(self) -> str:
        if self.challenger is None:
            return f"{self.model}: champion v{self.champion.version} takes every key"
        return (
            f"{self.model}: challenger v{self.challenger.version} takes {self.percent}% of keys, "
            f"champion v{self.champion.version} the rest"
        )

    def key(self) -> tuple[str, str | None, int]:
        """What identifies this routing (versions and percent); equal keys route identically."""
        challenger = self.challenger.version if self.challenger else None
        return (self.champion.version, challenger, self.percent if challenger else 0)
