"""The demo's steps: train twice, serve both versions, replay split traffic, drift, canary verdict, report.

Everything runs for real on loopback: kfp.local + MLflow (SQLite) for training, two `mlstack serve`
processes, one `mlstack sink`, the drift job with Evidently, the canary analysis. The demo's state
lives in ``$MLSTACK_HOME/demo`` and is laid anew on every run, so re-running gives the same result.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlstack.core import data as dataio
from mlstack.core import generator, payload
from mlstack.core.settings import Settings, load_settings
from mlstack.demo import replay as replayer
from mlstack.demo import report
from mlstack.demo.procs import Services, bin_path, free_port

log = logging.getLogger(__name__)


@dataclass
class DemoSize:
    """How big the demo is: the full run takes minutes, ``--fast`` (tests) well under one."""

    train_rows: int
    requests: int
    windows: int
    label_share: float
    canary_percent: int
    min_samples: int
    min_labeled: int

    @classmethod
    def of(cls, fast: bool) -> DemoSize:
        if fast:
            return cls(train_rows=8_000, requests=2_400, windows=4, label_share=0.8, canary_percent=25,
                       min_samples=200, min_labeled=150)
        return cls(train_rows=40_000, requests=8_000, windows=6, label_share=0.6, canary_percent=10,
                   min_samples=500, min_labeled=300)


class Step:
    """Times a step and reports it to the progress callback."""

    def __init__(self, timings: dict[str, float], name: str, say) -> None:
        self.timings, self.name, self.say = timings, name, say

    def __enter__(self) -> Step:
        self.began = time.monotonic()
        self.say(f"{self.name}…")
        return self

    def __exit__(self, *exc) -> None:
        self.timings[self.name] = time.monotonic() - self.began
