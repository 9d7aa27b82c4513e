"""A traffic replayer that plays KServe's part on a laptop.

It splits requests between the primary (champion) and the canary (challenger) predictor the way
Knative's traffic split would, then sends the sink exactly the CloudEvents KServe's logger sends
(binary mode: ``ce-id`` shared by request and response, ``ce-type``, ``ce-inferenceservicename``,
``ce-namespace``, ``ce-component``; body = the raw payload), and posts ground-truth labels for a
share of requests to ``/feedback``. ``ce-time`` spreads requests over a simulated period so the
payload log has hours to window over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import numpy as np
import orjson
import pandas as pd

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


@dataclass
class Variant:
    """One predictor behind the split: its URL, the share of traffic it gets and its component name."""

    url: str
    percent: float
    component: str  # "predictor" for the primary; the canary is the same component in KServe


@dataclass
class ReplayResult:
    sent: int = 0
    answered: Counter = field(default_factory=Counter)  # model_version -> responses
    errors: Counter = field(default_factory=Counter)  # "predictor:<status>" | "sink:<status>" -> count
    labeled: int = 0
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)


def _json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts: NaN becomes null, numpy scalars become Python ones."""
    records = frame.to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in records
    ]


def choose_variants(count: int, variants: list[Variant], seed: int) -> np.ndarray:
    """Indices of the variant answering each request, drawn like a weighted traffic split."""
    weights = np.array([v.percent for v in variants], dtype=float)
    return np.random.default_rng(seed).choice(len(variants), size=count, p=weights / weights.sum())


async def replay(
    rows: pd.DataFrame,
    features: list[str],
    labels: pd.Series,
    model_name: str,
    variants: list[Variant],
    sink_url: str,
    start: datetime,
    period: timedelta,
    label_share: float = 0.6,
    namespace: str = "demo",
    concurrency: int = 16,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Send every row as a one-instance v1 request through the split; log it to the sink like KServe."""
    result = ReplayResult()
    choice = choose_variants(len(rows), variants, seed)
    labeled = np.random.default_rng(seed + 1).random(len(rows)) < label_share
    payloads = _json_rows(rows[features])
    step = period / max(len(rows), 1)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(rows)):
        queue.put_nowait(i)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        variant = variants[choice[i]]
        request_id = str(uuid.UUID(int=np.random.default_rng([seed, i]).integers(0, 2**63) << 64 | i))
        body = orjson.dumps({"instances": [payloads[i]], "parameters": {"return_probabilities": True}})
        began = asyncio.get_running_loop().time()
        answer = await client.post(
            f"{variant.url}/v1/models/{model_name}:predict",
            content=body,
            headers={"content-type": "application/json"},
        )
        elapsed = (asyncio.get_running_loop().time() - began) * 1000
        result.sent += 1
        if answer.status_code != 200:
            result.errors[f"predictor:{answer.status_code}"] += 1
            return
        version = str(answer.json().get("model_version", "unknown"))
        result.answered[version] += 1
        result.latencies_ms.setdefault(version, []).append(elapsed)
        stamp = (start + step * i).isoformat()
        common = {
            "ce-id": request_id,
            "ce-specversion": "1.0",
            "ce-source": f"http://localhost/{model_name}",
            "ce-inferenceservicename": model_name,
            "ce-namespace": namespace,
            "ce-component": variant.component,
            "ce-time": stamp,
            "content-type": "application/json",
        }
        # KServe's logger posts both events (and a client its label) independently: send them together
        sends = [
            client.post(
                f"{sink_url}/",
                content=content,
                headers=dict(common, **{"ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE}),
            )
            for kind, content in (("request", body), ("response", answer.content))
        ]
        if labeled[i]:
            sends.append(
                client.post(
                    f"{sink_url}/feedback", json={"request_id": request_id, "label": int(labels.iloc[i])}
                )
            )
        answers = await asyncio.gather(*sends)
        for kind, logged in zip(("sink", "sink", "feedback"), answers, strict=False):
            if logged.status_code >= 300:
                result.errors[f"{kind}:{logged.status_code}"] += 1
            elif kind == "feedback":
                result.labeled += 1

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(client, i)
            if progress:
                progress(1)

    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return result
