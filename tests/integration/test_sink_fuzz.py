"""Hypothesis: ≥ 2,000 generated CloudEvents, valid and hostile, against a real sink process.

Then a real drift job and a real canary analysis on what it stored. Checked: no file outside the
store, no 5xx, every acknowledged valid pair stored exactly once (on the raw Parquet), and both
analyses complete. Derandomized (a fixed example sequence), so CI runs the same events each time.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.core import generator, payload, storage
from mlstack.core.settings import DriftConfig, Settings
from mlstack.serving.sink.events import REQUEST_TYPE, RESPONSE_TYPE
from tests.fixtures.serving import start_sink

CONTRACT = generator.loan_contract()
FEATURES = CONTRACT.feature_names
ROWS = generator.generate(400, seed=14)[FEATURES]
EXAMPLES, ITEMS_PER_EXAMPLE = 70, 10  # 3 events per item (a valid pair and a hostile event): 2,100 events
TOKEN = uuid.uuid4().hex[:8]  # in every hostile name: any file named with it outside the store is an escape
HOSTILE_NAMES = [
    f"../../{TOKEN}",
    f"/tmp/{TOKEN}",
    f"..\\\\{TOKEN}",
    ".",
    "..",
    f"a/{TOKEN}",
    f"UPPER{TOKEN}",
    "x" * 64,
    "",
    f"-{TOKEN}",
]
HOSTILE_TIMES = [
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+05:00",
    "yesterday",
    "2026-13-40T99:99:99",
    "1" * 80,
]
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | printable,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(printable, inner, max_size=4),
    max_leaves=12,
)


def _row(i: int) -> dict:
    return {k: (None if v != v else v) for k, v in ROWS.iloc[i % len(ROWS)].to_dict().items()}


@st.composite
def valid_pair(draw) -> dict:
    n = draw(st.integers(1, 3))
    start = draw(st.integers(0, len(ROWS) - 1))
    rows = [_row(start + j) for j in range(n)]
    shape = draw(st.sampled_from(["named", "positional", "tensor"]))
    if shape == "named":
        body = {"instances": rows}
    elif shape == "positional":
        body = {"instances": [[r[f] for f in FEATURES] for r in rows]}
    else:
        flat = [r[f] for r in rows for f in FEATURES]
        body = {
            "inputs": [{"name": "input-0", "shape": [n, len(FEATURES)], "datatype": "BYTES", "data": flat}]
        }
    odd_value = draw(st.sampled_from([None, "sixty", "40", True]))
    if odd_value is not None and shape == "named":
        body["instances"][0]["age"] = odd_value
    version = draw(st.sampled_from(["1", "2"]))
    predictions = [draw(st.integers(0, 1)) for _ in range(n)]
    response = {"predictions": predictions, "probabilities": [0.2 + 0.6 * p for p in predictions]}
    return {"request": body, "response": response | {"model_name": "fuzz", "model_version": version}, "n": n}


@st.composite
def hostile_event(draw) -> tuple[dict, bytes]:
    headers = {
        "ce-id": draw(st.sampled_from([uuid.uuid4().hex, "", "x" * 300, "a b"])) or draw(printable),
        "ce-type": draw(st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE, "bogus", ""])),
        "ce-inferenceservicename": draw(st.sampled_from(HOSTILE_NAMES) | printable),
        "ce-namespace": draw(st.sampled_from(["ml", "", *HOSTILE_NAMES])),
        "ce-component": draw(st.sampled_from(["predictor", f"../{TOKEN}", ""])),
        "content-type": "application/json",
    }
    if draw(st.booleans()):
        headers["ce-time"] = draw(st.sampled_from(HOSTILE_TIMES) | printable)
    # HTTP itself (h11, client side) refuses values with surrounding whitespace: no server sees those
    headers = {k: v.strip() for k, v in headers.items()}
    body = draw(
        st.sampled_from([b"", b"{", b"[1]", b"\xff\xfe"])
        | json_values.map(lambda v: orjson.dumps(v))
        | st.fixed_dictionaries(
            {
                "predictions": st.lists(st.integers(0, 1), max_size=3),
                "model_version": st.sampled_from(HOSTILE_NAMES),
            }
        ).map(orjson.dumps)
        | st.fixed_dictionaries({"instances": json_values}).map(orjson.dumps)
    )
    return headers, body


def _headers(ce_id: str, kind: str, ce_time: str | None) -> dict[str, str]:
    headers = {
        "ce-id": ce_id,
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-specversion": "1.0",
        "ce-source": "fuzz",
        "ce-inferenceservicename": "fuzz",
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "content-type": "application/json",
    }
    if ce_time:
        headers["ce-time"] = ce_time
    return headers


@pytest.fixture(scope="module")
def fuzz_sink(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    store = root / "a" / "b" / "store"
    sink = start_sink(
        str(store), root / "wal", root / "sink.log", env_extra={"MLSTACK_SINK__FLUSH_ROWS": "200"}
    )
    state = {"root": root, "store": str(store), "sink": sink, "statuses": {}, "acked": {}, "events": 0}
    state["acked_hostile"] = set()  # ce-ids of hostile events the sink answered 200
    state["client"] = httpx.Client(timeout=60)
    state["started"] = time.monotonic()
    yield state
    state["client"].close()
    sink.stop()


def _send(state, headers, body) -> httpx.Response:
    answer = state["client"].post(state["sink"].url, headers=headers, content=body)
    state["events"] += 1
    state["statuses"][answer.status_code] = state["statuses"].get(answer.status_code, 0) + 1
    assert answer.status_code < 500, (headers, body[:200], answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    return answer


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    st.lists(
        st.tuples(st.booleans(), valid_pair(), hostile_event()),
        min_size=ITEMS_PER_EXAMPLE,
        max_size=ITEMS_PER_EXAMPLE,
    )
)
def test_generated_events(fuzz_sink, items):
    # every item sends both, so the count is fixed (a random valid/hostile split once gave 1,995)
    for hostile_first, pair, (headers, body) in items:
        if hostile_first:
            _send_hostile(fuzz_sink, headers, body)
        _send_pair(fuzz_sink, pair)
        if not hostile_first:
            _send_hostile(fuzz_sink, headers, body)


def _send_hostile(state, headers, body) -> None:
    if _send(state, headers, body).status_code == 200:
        state["acked_hostile"].add(headers["ce-id"])


def _send_pair(state, pair) -> None:
    ce_id = uuid.uuid4().hex
    ce_time = None if pair["n"] != 2 else datetime.now(UTC).isoformat()
    codes = [
        _send(state, _headers(ce_id, kind, ce_time), orjson.dumps(pair[kind])).status_code
        for kind in ("request", "response")
    ]
    if codes == [200, 200]:
        state["acked"][ce_id] = pair["n"]


def _kept(store: Path) -> dict[str, list[str]]:
    kept: dict[str, list[str]] = {}
    for path in [*store.glob("unpaired/**/*.jsonl"), *store.glob("quarantine/**/*.jsonl")]:
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            kept.setdefault(record["id"], []).append(record.get("reason"))
    return kept


def test_store_holds_every_acknowledged_pair_once_and_nothing_escaped(fuzz_sink, tmp_path):
    state = fuzz_sink
    assert state["events"] == 3 * ITEMS_PER_EXAMPLE * EXAMPLES >= 2000
    state["sink"].stop()  # the final flush
    seconds = time.monotonic() - state["started"]
    print(f"fuzz: {state['events']} events, statuses {state['statuses']}, {seconds:.1f} s")
    root = state["root"]
    outside = [
        p
        for p in root.rglob("*")
        if p.is_file() and not str(p).startswith((state["store"], str(root / "wal"), str(root / "sink")))
    ]
    assert outside == []
    assert list(Path("/tmp").glob(f"*{TOKEN}*")) == [] and list(root.parent.rglob(f"*{TOKEN}*")) == []
    keys = ["inference_service", "model_version", "date", "hour"]
    raw = payload.read_partitioned(storage.join(state["store"], "predictions"), keys)
    counts = raw.groupby("request_id").size().to_dict()
    acked = state["acked"]
    assert len(acked) > 300
    assert {i: counts.get(i) for i in acked} == acked  # every acknowledged pair, each row once
    kept = _kept(Path(state["store"]))  # ce-id -> reasons, from unpaired/ and quarantine/
    assert not (kept.keys() & acked.keys())  # stored, and not also kept aside
    assert all(all(reasons) for reasons in kept.values())
    # every other acknowledged event is somewhere: stored or kept aside with a reason
    assert [i for i in state["acked_hostile"] if i not in counts and i not in kept] == []
    assert set(raw["inference_service"]) == {"fuzz"} and set(raw["model_version"]) <= {"1", "2"}

    # a real drift job and a real canary analysis on that store
    from mlstack.adapters import mlflow as mlflow_adapter
    from mlstack.monitoring.canary import job as canary_job
    from mlstack.monitoring.drift import job as drift_job

    # an empty registry: "fuzz" is not registered
    registry = mlflow_adapter.from_settings(Settings(home=str(tmp_path / "home")))
    reference = tmp_path / "reference.parquet"
    generator.generate(600, seed=15)[FEATURES].to_parquet(reference)
    result = drift_job.run(
        "fuzz",
        "1",
        DriftConfig(min_rows=50),
        registry=registry,
        store=state["store"],
        workspace_uri=None,
        window=timedelta(hours=2),
        reference_uri=str(reference),
    )
    assert result["status"] == "ok" and isinstance(result["drift_detected"], bool)
    config = Settings(home=str(tmp_path / "home"), sink={"store": state["store"]})
    analysis, json_path, _ = canary_job.analyze_service(
        config, "fuzz", "ml", "1", "2", None, None, since=datetime.now(UTC) - timedelta(hours=2)
    )
    assert analysis.verdict in ("promote", "continue", "rollback") and json_path.exists()
