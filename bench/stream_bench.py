"""`make bench-stream`: `mlstack stream` exactly once and at least once, beside the HTTP predictor.

One run, loopback only, one model (logistic regression registered by the pipeline's register step,
so the compiled ONNX engine serves, as in production). The scorer (and `mlstack serve`) is pinned to
one core; the Kafka broker, the producer, the read_committed reader and wrk to the other
(``taskset``), so events/s is throughput per scorer core; the scorer's CPU seconds per 1,000 events
(user + system, every thread: librdkafka's, the store writer's) are recorded beside it.

- throughput: 100k record events already in the topic, drained by a fresh consumer group, for
  several micro-batch sizes (exactly once) and at least once; payload store writer on;
- latency: 5,000 events/s for 20 s at a fixed rate; end to end = from the event's Kafka timestamp
  to the reader seeing its committed prediction; twice: the payload store writer as its own process
  on the other core (`mlstack stream-store`, the chart's second container: the goal's case), and
  as a thread of the scorer (`mlstack stream`'s default on a laptop);
- failover: at 1,000 events/s, SIGKILL the scorer and start it again at once (what a StatefulSet
  does): seconds from the kill to the first committed prediction of an event produced after it;
- the HTTP predictor (`mlstack serve`, lean, same model directory): single-row requests, wrk.

Writes bench/results/stream.{json,md}; the load average before each case is in the JSON (other
work on the machine shows there). ``BENCH_QUICK=1``: small sizes into bench/.work/ (a check).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.loadgen import LOAD_PIN, SERVER_PIN, cpu_seconds, load_average, wrk  # noqa: E402
from mlstack.core.procs import free_port, stop, wait_for_http  # noqa: E402
from tests.fixtures.kafka import start_broker  # noqa: E402
from tests.fixtures.stream import Reader, feature_rows, register_version  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1" or "--quick" in sys.argv
EVENTS = 20_000 if QUICK else 100_000
BATCHES = (100, 500, 2000) if QUICK else (100, 500, 2000, 5000)
RATE, RATE_SECONDS = 5000, (5 if QUICK else 20)
WARM_SECONDS = 5  # after the first answer, before the measured window (group join, first flushes)
DRAIN_SECONDS = 3  # after the measured window, so its last events are answered before the reader stops
KILLS = 1 if QUICK else 3
RESULTS = ROOT / "bench" / (".work" if QUICK else "results")
MODEL = "bench-loans"
GOALS = {"events_per_core_exactly_once": 30_000, "p99_ms_at_5000": 100, "failover_s": 2.0}


class Scorer:
    """One `mlstack stream` process pinned to the server core (``command`` stream-store and ``pin``
    LOAD_PIN: the payload store writer as the chart runs it, a container with a CPU of its own)."""

    def __init__(
        self,
        home: Path,
        env: dict,
        name: str,
        *args: str,
        command: str = "stream",
        pin: list[str] = SERVER_PIN,
    ):
        self.home, self.env, self.args, self.command, self.pin = home, env, args, command, pin
        self.log_path = home / f"{command}-{name}.log"
        self.log = open(self.log_path, "ab")
        self.process = self.start()

    def start(self) -> subprocess.Popen:
        command = [
            *self.pin,
            sys.executable,
            "-m",
            "mlstack.cli.main",
            self.command,
            "--model",
            MODEL,
            *self.args,
        ]
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        stop(self.process, timeout=60)


def produce(bootstrap: str, topic: str, count: int, rows: list[dict]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1_000_000}
    )
    values = [orjson.dumps(r) for r in rows]
    for i in range(count):
        producer.produce(topic, values[i % len(values)], str(i % 10_000).encode())
        if i % 20_000 == 0:
            producer.poll(0)
    producer.flush(120)


def drain(bootstrap: str, home: Path, env: dict, run: str, count: int, *args: str) -> dict:
    """Start a scorer on its own group and output topics; time it from first to last answer."""
    topics = {k: f"bench.{run}.{k}" for k in ("predictions", "dlq", "payloads")}
    run_env = env | {
        "MLSTACK_STREAM__GROUP_ID": f"bench-{run}",
        "MLSTACK_STREAM__OUTPUT_TOPIC": topics["predictions"],
        "MLSTACK_STREAM__DLQ_TOPIC": topics["dlq"],
        "MLSTACK_STREAM__PAYLOAD_TOPIC": topics["payloads"],
        "MLSTACK_STREAM__INSTANCE_ID": f"bench-{run}",
        # a warm-started scorer reads the registry after one poll interval, importing MLflow once
        # (seconds of CPU): keep that start-up cost out of the steady-state throughput window
        "MLSTACK_STREAM__REGISTRY_POLL_SECONDS": "300",
    }
    load = load_average()
    reader = Reader(bootstrap, [topics["predictions"]])
    scorer = Scorer(home, run_env, run, *args)
    first = cpu_first = None
    try:
        while reader.count() < count:
            reader.poll(0.05)
            if first is None and reader.count():
                first, cpu_first, seen_first = (
                    time.monotonic(),
                    cpu_seconds(scorer.process.pid),
                    reader.count(),
                )
            if scorer.process.poll() is not None:
                raise RuntimeError(f"scorer exited with {scorer.process.returncode}")
        last, cpu_last = time.monotonic(), cpu_seconds(scorer.process.pid)
    finally:
        scorer.stop()
        reader.close()
    events = count - seen_first
    cpu = cpu_last - cpu_first
    return {
        "events": events,
        "seconds": round(last - first, 2),
        "events_per_s": round(events / (last - first)),
        "scorer_cpu_s_per_1000": round(cpu / events * 1000, 4),
        "events_per_scorer_cpu_s": round(events / cpu) if cpu > 0 else None,
        "load_avg_before": load,
    }


class Feeder(threading.Thread):
    """Produces record events at a fixed rate (in 10 ms steps) until stopped."""

    def __init__(self, bootstrap: str, topic: str, rate: int, rows: list[dict]):
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self.topic, self.rate, self.values = topic, rate, [orjson.dumps(r) for r in rows]
        self.halt, self.sent = threading.Event(), 0

    def run(self) -> None:
        started = time.monotonic()
        while not self.halt.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                self.producer.produce(
                    self.topic, self.values[self.sent % len(self.values)], str(self.sent % 10_000).encode()
                )
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.01)
        self.producer.flush(30)


def latency(bootstrap: str, home: Path, env: dict, writer_process: bool) -> dict:
    """End to end at RATE events/s. ``writer_process``: the payload store writer runs as its own
    process on the other core (the chart's second container); else as a thread of the scorer."""
    topic = f"bench.latency.{uuid.uuid4().hex[:6]}"
    run_env = env | {
        "MLSTACK_STREAM__INPUT_TOPIC": topic,
        "MLSTACK_STREAM__OUTPUT_TOPIC": f"{topic}.out",
        "MLSTACK_STREAM__PAYLOAD_TOPIC": f"{topic}.payloads",
        "MLSTACK_STREAM__GROUP_ID": f"{topic}.g",
        "MLSTACK_STREAM__INSTANCE_ID": "bench-latency",
        "MLSTACK_STREAM__STORE_METRICS_PORT": "0",
    }
    name = "latency-writer-process" if writer_process else "latency-writer-thread"
    writer = None
    if writer_process:
        writer = Scorer(home, run_env, name, command="stream-store", pin=LOAD_PIN)
        scorer = Scorer(home, run_env, name, "--no-store-writer")
    else:
        scorer = Scorer(home, run_env, name)
    reader = Reader(bootstrap, [f"{topic}.out"])
    try:
        deadline = time.monotonic() + 300
        while b"scorer ready in" not in scorer.log_path.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        feeder = Feeder(bootstrap, topic, RATE, feature_rows(2000))
        load = load_average()
        feeder.start()
        answers: list[tuple[int, float]] = []  # (produced at ms, seen at ms)
        first_seen = None
        deadline = time.monotonic() + 120
        # the clock starts once the scorer answers: the first answers wait for its group join
        # (the broker's group.initial.rebalance.delay.ms), which is start-up, not steady-state latency
        while time.monotonic() < deadline:
            for message in reader.consumer.consume(1000, 0.002):
                if message.error() is None:
                    seen = time.time() * 1000
                    answers.append((int(dict(message.headers())["mlstack-source-timestamp"]), seen))
                    if first_seen is None:
                        first_seen = seen
                        deadline = time.monotonic() + WARM_SECONDS + RATE_SECONDS + DRAIN_SECONDS
        feeder.halt.set()
        feeder.join(30)
    finally:
        scorer.stop()
        if writer is not None:
            writer.stop()
        reader.close()
    if first_seen is None:
        raise TimeoutError("no answer within 120 s of the first event")
    start = first_seen + WARM_SECONDS * 1000  # events produced from here on are measured
    measured = [seen - sent for sent, seen in answers if start <= sent <= start + RATE_SECONDS * 1000]
    warmup = [seen - sent for sent, seen in answers if sent < start]
    measured.sort()
    pick = lambda q: round(measured[min(len(measured) - 1, int(q * len(measured)))], 1)  # noqa: E731
    return {
        "rate": RATE,
        "seconds": RATE_SECONDS,
        "warm_seconds": WARM_SECONDS,
        "answers": len(measured),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(measured[-1], 1),
        "warmup_max_ms": round(max(warmup), 1) if warmup else None,
        "store_writer": "own process, other core (the chart)" if writer_process else "thread of the scorer",
        "load_avg_before": load,
    }


def failover(bootstrap: str, home: Path, env: dict) -> dict:
    topic = f"bench.failover.{uuid.uuid4().hex[:6]}"
    run_env = env | {
        "MLSTACK_STREAM__INPUT_TOPIC": topic,
        "MLSTACK_STREAM__OUTPUT_TOPIC": f"{topic}.out",
        "MLSTACK_STREAM__GROUP_ID": f"{topic}.g",
        "MLSTACK_STREAM__INSTANCE_ID": "bench-failover",
    }
    scorer = Scorer(home, run_env, "failover")
    reader = Reader(bootstrap, [f"{topic}.out"])
    feeder = Feeder(bootstrap, topic, 1000, feature_rows(2000))
    feeder.start()
    kills = []
    try:
        for _ in range(KILLS):
            reader.wait_for(lambda: reader.count() > 2000 + len(kills) * 3000, 300, poll_seconds=0.05)
            load = load_average()
            killed_at = time.time()
            scorer.process.send_signal(signal.SIGKILL)
            scorer.process.wait()
            scorer.process = scorer.start()
            first = None
            while first is None:
                for message in reader.consumer.consume(1000, 0.005):
                    if (
                        message.error() is None
                        and int(dict(message.headers())["mlstack-source-timestamp"]) > killed_at * 1000
                    ):
                        first = time.time()
                        break
                if time.time() - killed_at > 120:
                    raise TimeoutError("no answer within 120 s of the kill")
            kills.append(
                {"seconds_to_first_new_answer": round(first - killed_at, 2), "load_avg_before": load}
            )
            reader.poll(0.5)
    finally:
        feeder.halt.set()
        scorer.stop()
        reader.close()
    return {"rate": 1000, "kills": kills, "worst_s": max(k["seconds_to_first_new_answer"] for k in kills)}


def http_predictor(model_dir: Path, home: Path) -> dict:
    port = free_port()
    env = os.environ | {"MLSTACK_HOME": str(home), "MLSTACK_LOG_FORMAT": "text"}
    process = subprocess.Popen(
        [
            *SERVER_PIN,
            sys.executable,
            "-m",
            "mlstack.cli.main",
            "serve",
            "--model",
            str(model_dir),
            "--name",
            MODEL,
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=open(home / "serve.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/v2/health/ready", timeout=300, process=process)
        body = json.dumps({"instances": [feature_rows(1)[0]], "parameters": {"return_probabilities": True}})
        return wrk(f"{url}/v1/models/{MODEL}:predict", body, 3 if QUICK else 10, 16, process.pid)
    finally:
        stop(process)


def main() -> None:
    os.sched_setaffinity(0, {int(LOAD_PIN[-1])} if LOAD_PIN else os.sched_getaffinity(0))
    root = Path(tempfile.mkdtemp(prefix="mlstack-bench-stream-"))
    broker = start_broker(root / "kafka", log_level="WARN")
    home = root / "home"
    home.mkdir()
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    os.environ["MLSTACK_HOME"] = str(home)
    version = register_version(tracking, MODEL, seed=5)
    env = os.environ | {
        "MLSTACK_HOME": str(home),
        "MLSTACK_TRACKING_URI": tracking,
        "MLSTACK_LOG_FORMAT": "text",
        "MLSTACK_STREAM__KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "MLSTACK_STREAM__METRICS_PORT": "0",
        "MLSTACK_STREAM__TOPIC_PARTITIONS": "6",
        "MLSTACK_STREAM__STORE": str(root / "payloads"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": QUICK,
        "model": f"{MODEL} v{version} (logistic regression, onnx)",
        "pinning": {"scorer_and_predictor": SERVER_PIN, "broker_load_reader": LOAD_PIN},
        "goals": GOALS,
    }
    try:
        from mlstack.adapters import kafka

        access = kafka.KafkaAccess(bootstrap_servers=broker.bootstrap)
        kafka.ensure_topics(kafka.admin(access), [kafka.TopicSpec(f"{MODEL}.features", 6, 1)], create=True)
        produce(broker.bootstrap, f"{MODEL}.features", EVENTS, feature_rows(5000))
        results["throughput"] = {}
        for batch in BATCHES:
            results["throughput"][f"exactly_once_batch_{batch}"] = drain(
                broker.bootstrap, home, env, f"eos-{batch}", EVENTS, "--batch-max-events", str(batch)
            )
            print(
                f"exactly once, batch {batch}: {results['throughput'][f'exactly_once_batch_{batch}']}",
                flush=True,
            )
        results["throughput"]["at_least_once_batch_2000"] = drain(
            broker.bootstrap, home, env, "alo-2000", EVENTS, "--at-least-once"
        )
        print(f"at least once: {results['throughput']['at_least_once_batch_2000']}", flush=True)
        results["latency"] = latency(broker.bootstrap, home, env, writer_process=True)
        print(f"latency: {results['latency']}", flush=True)
        results["latency_writer_thread"] = latency(broker.bootstrap, home, env, writer_process=False)
        print(f"latency, store writer as a thread: {results['latency_writer_thread']}", flush=True)
        results["failover"] = failover(broker.bootstrap, home, env)
        print(f"failover: {results['failover']}", flush=True)
        model_dir = home / "stream-models" / MODEL / f"v{version}"
        results["http_predictor"] = http_predictor(model_dir, home)
        print(f"http predictor: {results['http_predictor']}", flush=True)
    finally:
        broker.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "stream.md").write_text(markdown(results))
    print(f"wrote {RESULTS / 'stream.json'} and stream.md")


def markdown(r: dict) -> str:
    t = r["throughput"]
    loads = [v["load_avg_before"] for v in t.values()] + [
        r["latency"]["load_avg_before"],
        *([r["latency_writer_thread"]["load_avg_before"]] if "latency_writer_thread" in r else []),
        r["http_predictor"]["load_avg_before"],
    ]
    best = max(v["events_per_scorer_cpu_s"] or 0 for k, v in t.items() if k.startswith("exactly"))
    http = r["http_predictor"]
    lines = [
        "# Streaming bench (`make bench-stream`)",
        "",
        f"{r['started']}, {r['model']}; scorer and predictor pinned to core {''.join(r['pinning']['scorer_and_predictor'][-1:])},",
        f"broker, producer, reader and wrk to core {''.join(r['pinning']['broker_load_reader'][-1:])}.",
        "",
        f"Load average before the cases: {min(loads)}-{max(loads)} on 2 cores"
        + (
            " (other work shared the machine: wall-clock events/s and latencies are what the scorer got of a contended core)."
            if max(loads) > 2
            else " (the bench's own processes: the broker and load generator on their core)."
        ),
        'The CPU-second columns are what the work costs (the goal\'s "per core" is judged on them).',
        "",
        "| case | events/s (wall) | scorer CPU s / 1k events | events per scorer CPU-second | load avg before |",
        "|---|---|---|---|---|",
    ]
    for name, v in t.items():
        lines.append(
            f"| {name.replace('_', ' ')} | {v['events_per_s']:,} | {v['scorer_cpu_s_per_1000']} | {v['events_per_scorer_cpu_s']:,} | {v['load_avg_before']} |"
        )
    lines.append(
        f"| HTTP predictor (`mlstack serve`, lean, 1 row per request) | {round(http['rps']):,} | {http.get('server_cpu_s_per_1000')} | {round(http.get('requests_per_server_cpu_s') or 0):,} | {http['load_avg_before']} |"
    )
    lat, fo = r["latency"], r["failover"]
    lines += [
        "",
        f"End to end at {lat['rate']:,} events/s for {lat['seconds']} s, measured from {lat['warm_seconds']} s after the first answer"
        " (the worst before that is the group join):",
        "",
        "| payload store writer | p50 ms | p99 ms | max ms | answers | worst during the join, ms | load avg before |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in (r["latency"], r.get("latency_writer_thread")):
        if case:
            lines.append(
                f"| {case.get('store_writer', 'thread of the scorer')} | {case['p50_ms']} | {case['p99_ms']} | {case['max_ms']} | {case['answers']:,} | {case['warmup_max_ms']} | {case['load_avg_before']} |"
            )
    lines += [
        "",
        f"Failover (SIGKILL, restart at once, {fo['rate']:,} events/s): "
        + ", ".join(f"{k['seconds_to_first_new_answer']} s" for k in fo["kills"])
        + " from the kill to the first committed prediction of an event produced after it.",
        "",
        "| goal | wanted | measured | met |",
        "|---|---|---|---|",
        f"| events per scorer core, exactly once | >= {GOALS['events_per_core_exactly_once']:,} | {best:,} | {'yes' if best >= GOALS['events_per_core_exactly_once'] else 'no'} |",
        f"| p99 at 5,000 events/s (writer in its own process, as the chart runs it) | <= {GOALS['p99_ms_at_5000']} ms | {lat['p99_ms']} ms | {'yes' if lat['p99_ms'] <= GOALS['p99_ms_at_5000'] else 'no'} |",
        f"| first event after a kill | <= {GOALS['failover_s']} s | {fo['worst_s']} s (worst of {len(fo['kills'])}) | {'yes' if fo['worst_s'] <= GOALS['failover_s'] else 'no'} |",
        "",
        f"Exactly once vs the HTTP predictor per CPU-second: {best / (http.get('requests_per_server_cpu_s') or 1):.1f}x (one row per event and per request).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--markdown" in sys.argv:  # rewrite stream.md from stream.json (no measuring)
        (RESULTS / "stream.md").write_text(markdown(json.loads((RESULTS / "stream.json").read_text())))
    else:
        main()
