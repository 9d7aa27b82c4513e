"""The demo's steps: train twice, serve both versions, replay split traffic, drift, canary verdict, report.

Everything runs for real on loopback: kfp.local + MLflow (SQLite) for training, two `mlstack serve`
processes, one `mlstack sink`, Debian's Prometheus scraping both predictors, the drift job with
Evidently, the canary analysis (payload log and Prometheus). The demo's state
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
from mlstack.core import generator
from mlstack.core.procs import free_port
from mlstack.core.settings import Settings, load_settings
from mlstack.demo import prom, report
from mlstack.demo import replay as replayer
from mlstack.demo.procs import Services, bin_path

log = logging.getLogger(__name__)


@dataclass
class DemoSize:
    """How big the demo is: the full run, or ``--fast`` (what the tests run; timings in docs/demo.md)."""

    train_rows: int
    requests: int
    windows: int
    label_share: float
    canary_percent: int
    min_samples: int
    min_labeled: int
    drift_min_rows: int  # each window holds requests / windows x the champion's share: keep it above this

    @classmethod
    def of(cls, fast: bool) -> DemoSize:
        if fast:
            return cls(
                train_rows=8_000,
                requests=4_000,
                windows=2,
                label_share=0.8,
                canary_percent=10,
                min_samples=300,
                min_labeled=250,
                drift_min_rows=1000,
            )
        return cls(
            train_rows=40_000,
            requests=6_000,
            windows=6,
            label_share=0.9,
            canary_percent=10,
            min_samples=500,
            min_labeled=400,
            drift_min_rows=800,  # 6,000 x 90% / 6 windows = 900 champion rows an hour
        )


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


def _say_default(text: str) -> None:
    log.info(text)


def _demo_settings(base: Settings, home: Path, size: DemoSize) -> Settings:
    """The demo's own settings: its home (own SQLite MLflow), its store, the sizes of this run.

    Built with ``model_copy`` so no ``MLSTACK_*`` variable can point the demo at another home.
    The canary analysis looks once, at the end of the replay, so it uses fixed-horizon intervals,
    and a 5-point non-inferiority margin that the demo's label count can decide (the production
    defaults, sequential and 2 points, need far more labels).
    """
    return base.model_copy(
        update={
            "home": home,
            "tracking_uri": None,
            "registry_uri": None,
            "sink": base.sink.model_copy(update={"store": str(home / "payloads"), "flush_seconds": 1.0}),
            "canary": base.canary.model_copy(
                update={
                    "initial_percent": size.canary_percent,
                    "min_samples": size.min_samples,
                    "min_labeled": size.min_labeled,
                    "method": "fixed",
                    "max_accuracy_drop": 0.05,
                    "report_dir": str(home),
                    # the predictors' own vocabulary (no queue-proxy on a laptop): see mlstack/demo/prom.py
                    **prom.QUERIES,
                }
            ),
            "drift": base.drift.model_copy(update={"min_rows": size.drift_min_rows}),
        }
    )


def train_versions(settings: Settings, home: Path, size: DemoSize, say, on_registered=None) -> list[dict]:
    """Version 1 on older data (champion), version 2 on newer data (challenger).

    ``on_registered(result)`` runs after each version is registered: the demo starts that
    version's predictor there, on the core the (single-process) training leaves idle.
    """
    from mlstack.pipelines.training import DEFAULT_CONTRACT, run_training_locally

    results = []
    for seed, label in ((0, "older data (seed 0)"), (1, "newer data (seed 1)")):
        path = home / "data" / f"train-seed{seed}.parquet"
        dataio.save_table(generator.generate(size.train_rows, seed=seed), str(path))
        say(f"training on {label}")
        result = run_training_locally(settings, str(path), DEFAULT_CONTRACT, show_progress=False)
        result["data"] = label
        if not result.get("model_version"):
            raise RuntimeError("a demo model failed its gates; see $MLSTACK_HOME/demo/kfp/last-run.log")
        if on_registered:
            on_registered(result)
        results.append(result)
    return results


def traffic_rows(size: DemoSize, scenario: str) -> tuple[pd.DataFrame, int]:
    """Requests to replay: the first half from the training distribution, the rest under ``scenario``."""
    half = size.requests // 2
    before = generator.generate(half, seed=100)
    after = generator.generate(size.requests - half, seed=101, scenario=scenario)
    return pd.concat([before, after], ignore_index=True), half


def drift_over_time(
    settings: Settings,
    model: str,
    version: str,
    start: datetime,
    period: timedelta,
    windows: int,
    workspace: Path,
) -> list[dict]:
    """Run the real drift job once per window of the simulated period, champion traffic only."""
    from mlstack.adapters import mlflow as mlflow_adapter
    from mlstack.monitoring.drift import job as drift_job

    registry = mlflow_adapter.from_settings(settings)
    length = period / windows
    results = []
    for k in range(windows):
        until = start + length * (k + 1)
        result = drift_job.run(
            model,
            version,
            settings.drift,
            registry=registry,
            store=settings.payload_store,
            workspace_uri=str(workspace),
            window=length,
            now=until,
        )
        result["label"] = f"{(start + length * k):%H:%M}–{until:%H:%M}"
        results.append(result)
    return results


def analyze_canary(settings: Settings, model: str, champion: str, challenger: str, since: datetime) -> dict:
    """The canary CronJob's own analysis (``monitoring/canary/job.py``, what ``kubectl model analyze``
    runs) on the demo's payload log, registry and Prometheus, for the canary started at ``since``."""
    from mlstack.monitoring.canary.job import analyze_service

    analysis, json_path, md_path = analyze_service(
        settings,
        model,
        "demo",
        champion,
        challenger,
        prom.revision_of(champion),
        prom.revision_of(challenger),
        since,
    )
    return {**analysis.to_dict(), "report": {"json": str(json_path), "markdown": str(md_path)}}


def base_isvc(model: str, version: str, storage_uri: str) -> dict:
    """The stable InferenceService the chart would render for the champion (Knative mode)."""
    from mlstack.core import isvc

    return {
        "apiVersion": isvc.API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": model, "namespace": "demo", "annotations": {isvc.ANN_MODEL: model}},
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "model": {
                    "modelFormat": {"name": "mlstack-sklearn"},
                    "storageUri": storage_uri,
                    "env": [{"name": isvc.VERSION_ENV, "value": str(version)}],
                },
            }
        },
    }


def apply_verdict(
    settings: Settings,
    model: str,
    champion: str,
    challenger: str,
    verdict: str,
    reasons: list[str],
    out_dir: Path,
) -> dict:
    """Walk the InferenceService through start → promote | rollback with the real state machine;
    apply the alias moves to MLflow and write each object the cluster would receive."""
    import yaml

    from mlstack.adapters import model_aliases
    from mlstack.core import rollout

    aliases = model_aliases.aliases(settings, model)
    obj = base_isvc(model, champion, model_aliases.storage_uri(settings, model, champion))
    (out_dir / "isvc-stable.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
    started = rollout.start(
        obj,
        aliases,
        challenger,
        model_aliases.storage_uri(settings, model, challenger),
        settings.canary.initial_percent,
    )
    obj = started.result(obj)
    (out_dir / "isvc-canary.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
    applied = model_aliases.apply(settings, started.alias_ops)
    if verdict == "promote":
        move = rollout.promote(obj, model_aliases.aliases(settings, model))
    elif verdict == "rollback":
        move = rollout.rollback(obj, model_aliases.aliases(settings, model), "; ".join(reasons)[:250])
    else:
        return {
            "applied": applied,
            "move": "none (verdict continue: the canary keeps its share)",
            "object": str(out_dir / "isvc-canary.yaml"),
        }
    obj = move.result(obj)
    (out_dir / f"isvc-after-{verdict}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
    applied += model_aliases.apply(settings, move.alias_ops)
    return {"applied": applied, "move": move.summary, "object": str(out_dir / f"isvc-after-{verdict}.yaml")}


def run_demo(
    base: Settings | None = None,
    fast: bool = False,
    keep_running: bool = False,
    scenario: str = "covariate_shift",
    say=_say_default,
    progress_factory=None,
    on_done=None,
) -> dict[str, Any]:
    """The whole loop; returns the summary the report and the terminal table are drawn from.

    ``on_done(summary)`` runs while the servers are still up; with ``keep_running`` it is where
    the caller waits (the servers stop when it returns).
    """
    base = base or load_settings()
    size = DemoSize.of(fast)
    home = base.resolved_home / "demo"
    if home.exists():
        shutil.rmtree(home)  # a fresh demo every time: same seeds, same result
    home.mkdir(parents=True)
    settings = _demo_settings(base, home, size)
    timings: dict[str, float] = {}
    services = Services(home / "logs")
    model = settings.training.model_name
    try:
        env = {
            "MLSTACK_HOME": str(home),
            "MLSTACK_TRACKING_URI": settings.resolved_tracking_uri,
            "MLSTACK_SINK__FLUSH_SECONDS": "1",
        }
        sink_port = free_port()
        sink = services.launch(
            "sink",
            [bin_path("mlstack"), "sink", "--store", settings.payload_store, "--port", str(sink_port)],
            sink_port,
            env,
        )
        predictors = {}

        def serve(result: dict) -> None:
            version, port = result["model_version"], free_port()
            predictors[version] = services.launch(
                f"predictor-v{version}",
                [
                    bin_path("mlstack"),
                    "serve",
                    "--model",
                    f"models:/{model}/{version}",
                    "--name",
                    model,
                    "--port",
                    str(port),
                ],
                port,
                env,
            )

        with Step(timings, "train v1 and v2 (kfp.local + MLflow)", say):
            versions = train_versions(settings, home, size, say, on_registered=serve)
        champion, challenger = versions[0]["model_version"], versions[1]["model_version"]
        from mlstack.adapters import model_aliases

        aliases_before = model_aliases.aliases(settings, model)

        # the sink and v1's predictor started during training; v2's after its registration
        prometheus = prom.launch(
            services,
            home,
            {prom.revision_of(v): p.url.removeprefix("http://") for v, p in predictors.items()},
        )
        with Step(timings, "wait for the sink, both predictors and Prometheus", say):
            services.wait_ready(sink, "/healthz")
            for predictor in predictors.values():
                services.wait_ready(predictor, "/v2/health/ready")
            services.wait_ready(prometheus, "/-/ready")
            prom.wait_for_targets(prometheus.url, [prom.revision_of(v) for v in predictors])
        settings = settings.model_copy(
            update={"canary": settings.canary.model_copy(update={"prometheus_url": prometheus.url})}
        )

        rows, drift_from = traffic_rows(size, scenario)
        period = timedelta(hours=size.windows)
        start = (datetime.now(UTC) - period).replace(minute=0, second=0, microsecond=0)
        variants = [
            replayer.SplitEndpoint(predictors[champion].url, 100 - size.canary_percent, "predictor"),
            replayer.SplitEndpoint(predictors[challenger].url, size.canary_percent, "predictor"),
        ]
        with Step(
            timings,
            f"replay {len(rows)} requests ({100 - size.canary_percent}/{size.canary_percent} split)",
            say,
        ):
            bar = progress_factory(len(rows)) if progress_factory else None
            result = asyncio.run(
                replayer.replay(
                    rows,
                    generator.loan_contract().feature_names,
                    rows["default"],
                    model,
                    variants,
                    sink.url,
                    start,
                    period,
                    label_share=size.label_share,
                    progress=bar,
                )
            )
            if result.errors:
                raise RuntimeError(f"replay errors: {dict(result.errors)}")
            services.stop_one("sink")  # a graceful stop flushes every acknowledged event to Parquet
            # the analysis must see every answered request: wait for Prometheus's next scrape
            prom.wait_for_counts(
                prometheus.url,
                {prom.revision_of(v): result.answered.get(v, 0) for v in (champion, challenger)},
            )

        with Step(timings, f"drift job on {size.windows} windows (Evidently)", say):
            windows = drift_over_time(
                settings, model, champion, start, period, size.windows, home / "evidently"
            )
        with Step(timings, "canary analysis", say):
            analysis = analyze_canary(settings, model, champion, challenger, start)
        with Step(timings, f"apply verdict '{analysis['verdict']}' to the MLflow aliases", say):
            applied = apply_verdict(
                settings, model, champion, challenger, analysis["verdict"], analysis["reasons"], home
            )
        aliases_after = model_aliases.aliases(settings, model)

        scores: dict[str, float] = {}
        for w in windows:
            for name, feature in (w.get("features") or {}).items():
                scores[name] = max(scores.get(name, 0.0), feature.get("score") or 0.0)
        summary: dict[str, Any] = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model_name": model,
            "scenario": scenario,
            "requests": result.sent,
            "labeled": result.labeled,
            "period": f"{size.windows} h",
            "drift_from": f"{(start + period * (drift_from / len(rows))):%H:%M} UTC (request {drift_from})",
            "drift_share_threshold": settings.drift.drift_share,
            "versions": [
                {
                    "version": v["model_version"],
                    "aliases": ", ".join(v["aliases"]),
                    "metrics": v["metrics"],
                    "data": v["data"],
                }
                for v in versions
            ],
            "traffic": {
                "split": f"{100 - size.canary_percent}/{size.canary_percent}",
                "by_version": [
                    (v, "champion" if v == champion else "challenger", result.answered.get(v, 0))
                    for v in (champion, challenger)
                ],
            },
            "latency_p95_ms": {
                v: float(pd.Series(ms).quantile(0.95)) for v, ms in result.latencies_ms.items()
            },
            "drift_windows": windows,
            "top_drift_features": sorted(scores, key=scores.__getitem__, reverse=True)[:4],
            "analysis": analysis,
            "verdict_applied": applied,
            "aliases_before": aliases_before,
            "aliases_after": aliases_after,
            "links": [
                ("A/B report (Markdown)", analysis["report"]["markdown"]),
                ("A/B report (JSON)", analysis["report"]["json"]),
            ]
            + [(f"Evidently report {w['label']}", w["report"]) for w in windows if w.get("report")]
            + [("InferenceService after the verdict", Path(applied["object"]).name)],
            "timings": timings,
        }
        for w in windows:
            if w.get("report"):
                w["report"] = _relative(w["report"], home)
        summary["links"] = [(text, _relative(href, home)) for text, href in summary["links"]]
        summary["report"] = str(report.write(summary, home))
        if keep_running:
            summary["urls"] = keep_services(services, settings, home, predictors)
            summary["urls"]["prometheus"] = prometheus.url
        if on_done:
            on_done(summary)
        return summary
    finally:
        services.stop()


def _relative(path: str, home: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(home.resolve()))
    except ValueError:
        return path


def keep_services(services: Services, settings: Settings, home: Path, predictors: dict) -> dict[str, str]:
    """Start the MLflow UI and the Evidently UI next to the predictors; return every URL."""
    mlflow_port, evidently_port = free_port(), free_port()
    services.start(
        "mlflow-ui",
        [
            bin_path("mlflow"),
            "ui",
            "--backend-store-uri",
            settings.resolved_tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
        ],
        "/health",
        mlflow_port,
        {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        timeout=300,
    )
    services.start(
        "evidently-ui",
        [
            bin_path("evidently"),
            "ui",
            "--workspace",
            str(home / "evidently"),
            "--host",
            "127.0.0.1",
            "--port",
            str(evidently_port),
        ],
        "/",
        evidently_port,
        timeout=300,
    )
    urls = {"mlflow": f"http://127.0.0.1:{mlflow_port}", "evidently": f"http://127.0.0.1:{evidently_port}"}
    urls.update({f"predictor v{v}": service.url for v, service in predictors.items()})
    return urls
