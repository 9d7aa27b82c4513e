"""`make bench-drift`: stock Evidently DataDriftPreset on all rows vs `mlstack drift`, 30 columns.

For each size (100k, 1M current rows) and generator scenario, both run in their own process
(peak RSS and CPU by /usr/bin/time): stock = ``Report([DataDriftPreset(drift_share=...)])`` on the
full frames; job = the ``mlstack drift`` CLI end to end (Parquet in, every row judged, Evidently
snapshot + HTML out). Agreement: per-feature verdicts, the largest score difference, the dataset
verdict. A 10M-row case runs the job alone (the stock preset needs ~2.6 GB per 1M rows, ~26 GB
there: more than this machine has). Goals of issue 24 (3) are marked met / not met with the ratio.

Writes bench/results/drift.json and drift.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCENARIOS = ("none", "covariate_shift", "category_shift", "missingness", "concept_drift")
# rows:scenario pairs; results are written after each case, so an interrupted run still says something
DEFAULT_CASES = ",".join(
    [f"100000:{s}" for s in SCENARIOS] + [f"1000000:{s}" for s in SCENARIOS] + ["10000000:covariate_shift"]
)
STOCK_MAX_ROWS = int(os.environ.get("BENCH_DRIFT_STOCK_MAX_ROWS", "1000000"))
CASES = [
    (int(rows), scenario)
    for rows, scenario in (
        item.split(":") for item in os.environ.get("BENCH_DRIFT_CASES", DEFAULT_CASES).split(",")
    )
]
REFERENCE_ROWS = int(os.environ.get("BENCH_DRIFT_REFERENCE_ROWS", "50000"))
# issue 24 goal 3: 1M x 30 in <= 5 s of work, <= 600 MB, <= 8 s whole process; 10M in <= 30 s, <= 1 GB
GOAL_1M_WORK_S, GOAL_1M_MB, GOAL_1M_PROCESS_S = 5.0, 600.0, 8.0
GOAL_10M_S, GOAL_10M_MB = 30.0, 1024.0
PIECE_ROWS = 1_000_000
STARTED = datetime.now(UTC).isoformat(timespec="seconds")
LOAD_AT_START = [round(x, 1) for x in os.getloadavg()]


def thirty_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The generator's 18 features plus 12 derived ones (the generator's own output is unchanged)."""
    out = frame.drop(columns=["application_id", "default"]).copy()
    income = out["annual_income"]
    out["log_income"] = np.log(income)
    out["loan_to_income"] = out["loan_amount"] / income
    out["monthly_payment"] = out["loan_amount"] / out["loan_term_months"]
    out["payment_to_income"] = out["monthly_payment"] * 12 / income
    out["savings_to_income"] = out["savings_balance"] / income
    out["income_per_person"] = income / (1 + out["num_dependents"])
    out["late_per_account"] = out["num_late_payments"] / (1 + out["num_open_accounts"])
    out["rate_x_dti"] = out["interest_rate"] * out["debt_to_income"]
    out["score_x_utilization"] = out["credit_score"] * out["credit_utilization"]
    out["years_to_age"] = out["years_employed"] / out["age"]
    out["score_band"] = pd.cut(
        out["credit_score"],
        [0, 580, 670, 740, 800, 900],
        labels=["poor", "fair", "good", "very_good", "excellent"],
    ).astype(str)
    out["age_band"] = pd.cut(
        out["age"], [0, 30, 40, 50, 60, 200], labels=["<30", "30s", "40s", "50s", "60+"]
    ).astype(str)
    assert out.shape[1] == 30
    return out


def _measure(args: list[str], env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, peak RSS in MB, and the finished process."""
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS_KB=%M CPU_S=%U+%S", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    seconds = time.monotonic() - started
    rss = [line for line in done.stderr.splitlines() if line.startswith("MAXRSS_KB=")]
    if done.returncode != 0 or not rss:
        raise RuntimeError(f"{args[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    fields = dict(part.split("=") for part in rss[-1].split())
    user, system = fields["CPU_S"].split("+")
    done.cpu_seconds = float(user) + float(system)
    return seconds, int(fields["MAXRSS_KB"]) / 1024, done


def stock_worker(reference: str, current: str, out: str, drift_share: float) -> None:
    """Child process: the stock preset on every row; writes per-feature verdicts."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = pd.read_parquet(reference), pd.read_parquet(current)
    numeric = [c for c in ref.columns if pd.api.types.is_numeric_dtype(ref[c])]
    categorical = [c for c in ref.columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    verdicts, share = {}, None
    for item in snapshot.dict()["metrics"]:
        config = item["config"]
        if config["type"].endswith(":ValueDrift"):
            # p-value tests (chosen by Evidently for small references) flag drift below the threshold
            score, threshold = float(item["value"]), float(config["threshold"])
            drifted = score < threshold if "p_value" in config["method"] else score >= threshold
            verdicts[config["column"]] = {
                "score": score,
                "method": config["method"],
                "threshold": threshold,
                "drifted": bool(drifted),
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(item["value"]["share"])
    Path(out).write_text(
        json.dumps(
            {
                "features": verdicts,
                "numeric": numeric,
                "drifted_share": share,
                "dataset_drift": share >= drift_share,
            }
        )
    )


def _job_args(reference: Path, current: Path, tmp: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "mlstack"),
        "drift",
        "--model",
        "bench",
        "--version",
        "1",
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--workspace",
        str(tmp / "ws"),
        "--json",
    ]


def _job_env(tmp: Path) -> dict:
    return {"MLSTACK_HOME": str(tmp / "home"), "MLSTACK_LOG_LEVEL": "WARNING"}


def _write_current(path: Path, size: int, scenario: str) -> None:
    """The current window as Parquet, generated and written 1M rows at a time (row groups of 1M)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlstack.core.generator import generate

    writer = None
    for piece, start in enumerate(range(0, size, PIECE_ROWS)):
        rows = min(PIECE_ROWS, size - start)
        table = pa.Table.from_pandas(
            thirty_columns(generate(rows, seed=7 + 1000 * piece, scenario=scenario)), preserve_index=False
        )
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    assert writer is not None
    writer.close()


def run_case(size: int, scenario: str, reference: Path, tmp: Path, drift_share: float) -> dict:
    current = tmp / f"current-{size}-{scenario}.parquet"
    _write_current(current, size, scenario)
    load = os.getloadavg()[0]
    stock = None
    if size <= STOCK_MAX_ROWS:
        stock_out = tmp / "stock.json"
        stock_s, stock_mb, stock_done = _measure(
            [
                sys.executable,
                __file__,
                "stock",
                str(reference),
                str(current),
                str(stock_out),
                str(drift_share),
            ]
        )
        stock = json.loads(stock_out.read_text()) | {
            "seconds": round(stock_s, 2),
            "cpu_seconds": round(stock_done.cpu_seconds, 2),
            "peak_rss_mb": round(stock_mb, 1),
        }
    job_s, job_mb, done = _measure(_job_args(reference, current, tmp), env=_job_env(tmp))
    job = json.loads(done.stdout)
    current.unlink()
    case = {
        "rows": size,
        "scenario": scenario,
        "load_average_1m": round(load, 1),
        "job": {
            "seconds": round(job_s, 2),
            "cpu_seconds": round(done.cpu_seconds, 2),
            "in_process_seconds": job["seconds"],
            "peak_rss_mb": round(job_mb, 1),
            "drifted_share": job["drifted_share"],
            "dataset_drift": job["data_quality"]["distribution_drift"],
            "drift_detected": job["drift_detected"],
            "drifted": sorted(n for n, v in job["features"].items() if v["drifted"]),
        },
    }
    if stock is not None:
        from mlstack.monitoring.drift.report import display_name

        numeric = set(stock["numeric"])
        features = stock["features"]
        agree = sum(job["features"][n]["drifted"] == v["drifted"] for n, v in features.items())
        case["stock"] = {
            key: stock[key]
            for key in ("seconds", "cpu_seconds", "peak_rss_mb", "drifted_share", "dataset_drift")
        } | {"drifted": sorted(n for n, v in features.items() if v["drifted"])}
        case["feature_verdicts_agree"] = f"{agree}/{len(features)}"
        case["max_score_difference"] = max(
            abs(job["features"][n]["score"] - v["score"]) for n, v in features.items()
        )
        case["methods_agree"] = all(
            display_name(job["features"][n]["method"], "num" if n in numeric else "cat") == v["method"]
            for n, v in features.items()
        )
        case["dataset_verdict_agrees"] = stock["dataset_drift"] == job["data_quality"]["distribution_drift"]
    return case


def _markdown(report: dict) -> str:
    lines = [
        "# Drift job benchmark (`make bench-drift`)",
        "",
        f"Run {report['started']} on {report['machine']}; load average (1, 5, 15 min) "
        f"{report['load_average_at_start']} at the start, {report['load_average_at_write']} at the end "
        f"(a shared machine). Reference {report['reference_rows']:,} rows; 30 columns "
        "(18 generator features + 12 derived). Stock = Evidently `DataDriftPreset` on all rows; job = "
        "`mlstack drift` CLI end to end (Parquet streamed, every row judged with the pinned methods, "
        "data quality, workspace snapshot + HTML). Wall time, CPU time and peak RSS of each process "
        "(Python start-up and imports included); 'job in-process s' is the job's own work after imports. "
        "The load column is this shared machine's 1-minute load average when the case started.",
        "",
        "| rows | scenario | load 1m | stock wall s | stock CPU s | stock MB | job wall s | job CPU s | "
        "job in-process s | job MB | verdicts agree | max score diff | dataset verdict agrees | drifted (job) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for case in report["cases"]:
        j, s = case["job"], case.get("stock")
        stock = f"{s['seconds']} | {s['cpu_seconds']} | {s['peak_rss_mb']}" if s else "not run | - | -"
        agree = case.get("feature_verdicts_agree", "-")
        diff = f"{case['max_score_difference']:.1e}" if "max_score_difference" in case else "-"
        dataset = {True: "yes", False: "NO", None: "-"}[case.get("dataset_verdict_agrees")]
        lines.append(
            f"| {case['rows']:,} | {case['scenario']} | {case['load_average_1m']} | {stock} | "
            f"{j['seconds']} | {j['cpu_seconds']} | {j['in_process_seconds']} | {j['peak_rss_mb']} | "
            f"{agree} | {diff} | {dataset} | {', '.join(j['drifted']) or '-'} |"
        )
    lines += ["", "## Goals (issue 24, goal 3)", "", "| goal | measured | ratio | |", "|---|---|---:|---|"]
    for goal in report["goals"]:
        lines.append(
            f"| {goal['goal']} | {goal['measured']} | {goal['ratio']} | {'met' if goal['met'] else 'NOT MET'} |"
        )
    lines += ["", report["verdict"], ""]
    return "\n".join(lines)


def main() -> None:
    from mlstack.core.generator import generate
    from mlstack.core.settings import DriftConfig

    config = DriftConfig()
    RESULTS.mkdir(parents=True, exist_ok=True)
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as name:
        tmp = Path(name)
        reference = tmp / "reference.parquet"
        thirty_columns(generate(REFERENCE_ROWS, seed=3)).to_parquet(reference, index=False)
        # warm-up (not measured): creates the local MLflow database the job consults once
        warm = tmp / "warm.parquet"
        thirty_columns(generate(2000, seed=5)).to_parquet(warm, index=False)
        _measure(_job_args(reference, warm, tmp), env=_job_env(tmp))
        for size, scenario in CASES:
            case = run_case(size, scenario, reference, tmp, config.drift_share)
            print(json.dumps(case), flush=True)
            cases.append(case)
            _write(cases, config)  # after every case: an interrupted run still leaves its figures


def _goal(text: str, measured: float, limit: float, unit: str) -> dict:
    return {
        "goal": text,
        "measured": f"{measured:g} {unit}",
        "ratio": f"{measured / limit:.2f}x of the limit",
        "met": measured <= limit,
    }


def _goals(cases: list[dict]) -> list[dict]:
    goals = []
    compared = [c for c in cases if "feature_verdicts_agree" in c]
    if compared:
        agree = sum(int(c["feature_verdicts_agree"].split("/")[0]) for c in compared)
        total = sum(int(c["feature_verdicts_agree"].split("/")[1]) for c in compared)
        exact = agree == total and all(c["dataset_verdict_agrees"] for c in compared)
        goals.append(
            {
                "goal": "every feature verdict equals stock DataDriftPreset (all scenarios, all sizes)",
                "measured": f"{agree}/{total} feature verdicts; largest score difference "
                f"{max(c['max_score_difference'] for c in compared):.1e}",
                "ratio": f"{agree / total:.3f}",
                "met": exact,
            }
        )
    million = [c["job"] for c in cases if c["rows"] == 1_000_000]
    if million:
        goals.append(
            _goal("1M x 30: work <= 5 s", max(j["in_process_seconds"] for j in million), GOAL_1M_WORK_S, "s")
        )
        goals.append(
            _goal("1M x 30: peak RSS <= 600 MB", max(j["peak_rss_mb"] for j in million), GOAL_1M_MB, "MB")
        )
        goals.append(
            _goal("1M x 30: whole process <= 8 s", max(j["seconds"] for j in million), GOAL_1M_PROCESS_S, "s")
        )
    ten = [c["job"] for c in cases if c["rows"] == 10_000_000]
    if ten:
        goals.append(
            _goal("10M x 30: work <= 30 s", max(j["in_process_seconds"] for j in ten), GOAL_10M_S, "s")
        )
        goals.append(
            _goal("10M x 30: peak RSS <= 1 GB", max(j["peak_rss_mb"] for j in ten), GOAL_10M_MB, "MB")
        )
    return goals


def _write(cases: list[dict], config) -> None:
    goals = _goals(cases)
    stock_million = [c for c in cases if c["rows"] == 1_000_000 and "stock" in c]
    speed = ""
    if stock_million:
        stock_cpu = max(c["stock"]["cpu_seconds"] for c in stock_million)
        job_cpu = max(c["job"]["cpu_seconds"] for c in stock_million)
        speed = (
            f" At 1M rows the job's whole process takes {job_cpu} CPU-s against the stock preset's "
            f"{stock_cpu} CPU-s ({stock_cpu / job_cpu:.1f}x less)."
        )
    met = sum(goal["met"] for goal in goals)
    verdict = f"{met} of {len(goals)} goals met.{speed} Wall times depend on the load of this shared box (load column)."
    report = {
        "started": STARTED,
        "load_average_at_start": LOAD_AT_START,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_at_write": [round(x, 1) for x in os.getloadavg()],
        "reference_rows": REFERENCE_ROWS,
        "drift_share": config.drift_share,
        "cases": cases,
        "goals": goals,
        "verdict": verdict,
    }
    (RESULTS / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "drift.md").write_text(_markdown(report))
    print(verdict, flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "stock":
        stock_worker(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        main()
