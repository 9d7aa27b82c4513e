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

import aiohttp
import numpy as np
import orjson
import pandas as pd

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


@dataclass
class SplitEndpoint:
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


def choose_variants(count: int, variants: list[SplitEndpoint], seed: int) -> np.ndarray:
    """Indices of the variant answering each request, drawn like a weighted traffic split."""
    weights = np.array([v.percent for v in variants], dtype=float)
    return np.random.default_rng(seed).choice(len(variants), size=count, p=weights / weights.sum())


async def replay(
    rows: pd.DataFrame,
    features: list[str],
    labels: pd.Series,
    model_name: str,
    variants: list[SplitEndpoint],
    sink_url: str,
    start: datetime,
    period: timedelta,
    label_share: float = 0.6,
    namespace: str = "demo",
    concurrency: int = 16,
    seed: int = 0,
    label_batch: int = 250,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Send every row as a one-instance v1 request through the split; log it to the sink like KServe.

    Ground truth arrives the way it does in production, later and in batches: labels are posted to
    ``/feedback`` ``label_batch`` at a time once their requests have been answered.
    """
    result = ReplayResult()
    choice = choose_variants(len(rows), variants, seed)
    labeled = np.random.default_rng(seed + 1).random(len(rows)) < label_share
    payloads = _json_rows(rows[features])
    step = period / max(len(rows), 1)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(rows)):
        queue.put_nowait(i)
    pending_labels: list[dict] = []

    async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        async with session.post(url, data=body, headers=headers) as answer:
            return answer.status, await answer.read()

    async def send_labels(session: aiohttp.ClientSession, batch: list[dict]) -> None:
        status, _ = await post(
            session, f"{sink_url}/feedback", orjson.dumps(batch), {"content-type": "application/json"}
        )
        if status >= 300:
            result.errors[f"feedback:{status}"] += len(batch)
        else:
            result.labeled += len(batch)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        variant = variants[choice[i]]
        request_id = str(uuid.UUID(int=int(np.random.default_rng([seed, i]).integers(0, 2**63)) << 64 | i))
        body = orjson.dumps({"instances": [payloads[i]], "parameters": {"return_probabilities": True}})
        began = asyncio.get_running_loop().time()
        status, content = await post(
            session,
            f"{variant.url}/v1/models/{model_name}:predict",
            body,
            {"content-type": "application/json"},
        )
        elapsed = (asyncio.get_running_loop().time() - began) * 1000
        result.sent += 1
        if status != 200:
            result.errors[f"predictor:{status}"] += 1
            return
        version = str(orjson.loads(content).get("model_version", "unknown"))
        result.answered[version] += 1
        result.latencies_ms.setdefault(version, []).append(elapsed)
        common = {
            "ce-id": request_id,
            "ce-specversion": "1.0",
            "ce-source": f"http://localhost/{model_name}",
            "ce-inferenceservicename": model_name,
            "ce-namespace": namespace,
            "ce-component": variant.component,
            "ce-time": (start + step * i).isoformat(),
            "content-type": "application/json",
        }
        # KServe's logger posts the request and the response events independently: send them together
        logged = await asyncio.gather(
            post(session, f"{sink_url}/", body, dict(common, **{"ce-type": REQUEST_TYPE})),
            post(session, f"{sink_url}/", content, dict(common, **{"ce-type": RESPONSE_TYPE})),
        )
        for status, _ in logged:
            if status >= 300:
                result.errors[f"sink:{status}"] += 1
        if labeled[i]:
            pending_labels.append({"request_id": request_id, "label": int(labels.iloc[i])})
            if len(pending_labels) >= label_batch:
                batch = pending_labels[:]
                pending_labels.clear()
                await send_labels(session, batch)

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(session, i)
            if progress:
                progress(1)

    connector = aiohttp.TCPConnector(limit=concurrency * 3)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        if pending_labels:
            await send_labels(session, pending_labels)
    return result
