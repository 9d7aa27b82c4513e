"""The sink's restart: finish an interrupted flush, replay the WAL, hold early labels again.

Ids of a leftover flush intent that the partitions it named already hold count as done (only those
partitions, and only their ``request_id`` column, are read); the WAL is replayed for everything else;
labels stored as orphans within ``sink.early_label_seconds`` are held again (or joined, when their
pair was stored meanwhile).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlstack.serving.sink import store_io
from mlstack.serving.sink.events import Event

if TYPE_CHECKING:
    from mlstack.serving.sink.state import Sink

log = logging.getLogger(__name__)


def recover(self: Sink) -> int:
    """Rebuild state from the WAL after a restart; returns the number of events replayed."""
    self.done = self.wal.done_ids(self.origins)
    for intent, content in self.wal.intents():
        ids, partitions, day = _intent_parts(content)
        stored = store_io.stored_ids(self.store, ids, partitions, day)
        log.info("recovering flush %s: %d of %d ids already in the store", intent.name, len(stored), len(ids))
        self.wal.mark_done(sorted(stored), intent)
        self.done.update(dict.fromkeys(stored, time.time()))
    replayed = 0
    for _, record in self.wal.replay():
        event = Event.from_record(record)
        if event.id in self.done or (event.id, event.kind) in self.accepted:
            continue
        self.accepted.add((event.id, event.kind))
        if event.kind == "response":
            self._prefetch(event)
        self._add(event)
        replayed += 1
    self.wal.drop_finished_segments(self.done.keys())
    self.forget_old_ids(time.time())
    held = _recover_early_labels(self)
    log.info(
        "sink recovered: %d ids done, %d events replayed, %d early labels held",
        len(self.done),
        replayed,
        held,
    )
    return replayed


def _recover_early_labels(self: Sink) -> int:
    """Labels stored as orphans within the hold period: held again (or joined, if paired meanwhile)."""
    if self.early.hold_seconds <= 0 or self.early.max_labels <= 0:
        return 0
    from mlstack.core import payload
    from mlstack.core.payload_read import window_keep

    now = datetime.now(UTC)
    since = now - timedelta(seconds=self.early.hold_seconds)
    frame = payload.read_tree(
        f"{self.store.rstrip('/')}/feedback_orphans", [], keep=window_keep(None, since, None)
    )
    if frame is None or frame.empty:
        return 0
    frame = frame[pd.to_datetime(frame["received_at"], utc=True) >= since]
    groups = sorted(frame.groupby("received_at"), key=lambda g: g[0], reverse=True)
    for received, group in groups:  # the newest first: they fill a bounded hold first
        items = [
            {"request_id": r.request_id, "row_index": int(r.row_index), "label": r.label}
            for r in group.itertuples(index=False)
        ]
        age = (now - pd.Timestamp(received)).total_seconds()
        adopt = [i for i in items if self.known(i["request_id"]) is not None]
        self.adopted += [i | {"received_at": received} for i in adopt]
        self.early.hold([i for i in items if self.known(i["request_id"]) is None], received, age)
    return self.early.count + len(self.adopted)


def _intent_parts(content: list[str] | dict[str, Any]) -> tuple[list[str], list[str] | None, str | None]:
    """(ids, partitions or None, first day of kept events or None) of an intent, old or new format."""
    if isinstance(content, list):  # written before intents named their partitions
        return content, None, None
    return content["ids"], content.get("partitions"), content.get("day")
