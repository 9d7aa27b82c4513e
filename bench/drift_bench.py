"""`make bench-drift`: stock Evidently DataDriftPreset on all rows vs `mlstack drift`, 30 columns.

For each size (100k, 1M current rows) and generator scenario, both run in their own process
(peak RSS by /usr/bin/time): stock = ``Report([DataDriftPreset(drift_share=...)])`` on the full
frames; job = the ``mlstack drift`` CLI end to end (Parquet in, Evidently snapshot + HTML out).
Verdict agreement: per-feature drift verdicts and the dataset-drift verdict.

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
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCENARIOS = ("none", "covariate_shift", "category_shift", "missingness", "concept_drift")
# rows:scenario pairs; results are written after each case, so an interrupted run still says something
DEFAULT_CASES = ",".join([f"100000:{s}" for s in SCENARIOS] + [f"1000000:{s}" for s in SCENARIOS])
CASES = [
    (int(rows), scenario)
    for rows, scenario in (
        item.split(":") for item in os.environ.get("BENCH_DRIFT_CASES", DEFAULT_CASES).split(",")
    )
]
REFERENCE_ROWS = int(os.environ.get("BENCH_DRIFT_REFERENCE_ROWS", "50000"))
GOAL_SECONDS, GOAL_MB = 20.0, 1536.0


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
                "drifted": bool(drifted),
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(item["value"]["share"])
    Path(out).write_text(
        json.dumps({"features": verdicts, "drifted_share": share, "dataset_drift": share >= drift_share})
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


def run_case(size: int, scenario: str, reference: Path, tmp: Path, drift_share: float) -> dict:
    from mlstack.core.generator import generate

    current = tmp / f"current-{size}-{scenario}.parquet"
    thirty_columns(generate(size, seed=7, scenario=scenario)).to_parquet(current, index=False)
    stock_out = tmp / "stock.json"
    load = os.getloadavg()[0]
    stock_s, stock_mb, stock_done = _measure(
        [sys.executable, __file__, "stock", str(reference), str(current), str(stock_out), str(drift_share)]
    )
    stock = json.loads(stock_out.read_text())
    job_s, job_mb, done = _measure(_job_args(reference, current, tmp), env=_job_env(tmp))
    job = json.loads(done.stdout)
    agree = sum(job["features"][n]["drifted"] == v["drifted"] for n, v in stock["features"].items())
    current.unlink()
    return {
        "rows": size,
        "scenario": scenario,
        "load_average_1m": round(load, 1),
        "stock": {
            "seconds": round(stock_s, 2),
            "cpu_seconds": round(stock_done.cpu_seconds, 2),
            "peak_rss_mb": round(stock_mb, 1),
            "drifted_share": stock["drifted_share"],
            "dataset_drift": stock["dataset_drift"],
            "drifted": sorted(n for n, v in stock["features"].items() if v["drifted"]),
        },
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
        "feature_verdicts_agree": f"{agree}/{len(stock['features'])}",
        "dataset_verdict_agrees": stock["dataset_drift"] == job["data_quality"]["distribution_drift"],
    }


def _markdown(report: dict) -> str:
    lines = [
        "# Drift job benchmark (`make bench-drift`)",
        "",
        f"Machine: {report['machine']}. Reference {report['reference_rows']:,} rows; 30 columns "
        "(18 generator features + 12 derived). Stock = Evidently `DataDriftPreset` on all rows; job = "
        "`mlstack drift` CLI end to end (read Parquet, pinned methods on a seeded sample of "
        f"{report['sample_rows']:,} rows, data quality on all rows, workspace snapshot + HTML). Wall time "
        "and peak RSS of each process (includes Python start-up and imports).",
        "",
        "| rows | scenario | load 1m | stock wall s | stock CPU s | stock MB | job wall s | job CPU s | job in-process s | job MB | feature verdicts agree | dataset verdict agrees | drifted (stock) | drifted (job) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for case in report["cases"]:
        s, j = case["stock"], case["job"]
        lines.append(
            f"| {case['rows']:,} | {case['scenario']} | {case['load_average_1m']} | {s['seconds']} | {s['cpu_seconds']} | {s['peak_rss_mb']} | "
            f"{j['seconds']} | {j['cpu_seconds']} | {j['in_process_seconds']} | {j['peak_rss_mb']} | "
            f"{case['feature_verdicts_agree']} | {'yes' if case['dataset_verdict_agrees'] else 'NO'} | {', '.join(s['drifted']) or '-'} | {', '.join(j['drifted']) or '-'} |"
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


def _agrees(case: dict) -> bool:
    same, total = case["feature_verdicts_agree"].split("/")
    return case["dataset_verdict_agrees"] and same == total


def _write(cases: list[dict], config) -> None:
    big = [c for c in cases if c["rows"] >= 1_000_000]
    all_agree = all(
        c["dataset_verdict_agrees"] and len(set(c["feature_verdicts_agree"].split("/"))) == 1 for c in cases
    )
    if not big:
        goal = "Goal (1M rows x 30 columns in <= 20 s and <= 1.5 GB): NOT MEASURED (no 1M-row case ran)."
        holds = None
    else:
        keys = ("seconds", "cpu_seconds", "in_process_seconds", "peak_rss_mb")
        worst = {k: max(c["job"][k] for c in big) for k in keys}
        stock = {k: max(c["stock"][k] for c in big) for k in ("seconds", "cpu_seconds", "peak_rss_mb")}
        holds = {
            "memory": worst["peak_rss_mb"] <= GOAL_MB,
            "job_work_seconds": worst["in_process_seconds"] <= GOAL_SECONDS,
            "whole_process_wall_seconds": worst["seconds"] <= GOAL_SECONDS,
        }

        def word(ok: bool) -> str:
            return "holds" if ok else "DOES NOT hold"

        goal = (
            f"Goal at 1M rows x 30 columns (<= {GOAL_SECONDS:.0f} s, <= {GOAL_MB:.0f} MB), worst of "
            f"{len(big)} scenario(s): memory {worst['peak_rss_mb']} MB peak ({word(holds['memory'])}); the job's "
            f"work (load, checks, Evidently, workspace, HTML) {worst['in_process_seconds']} s "
            f"({word(holds['job_work_seconds'])}); the whole process including Python start-up and imports "
            f"{worst['seconds']} s wall / {worst['cpu_seconds']} CPU-s ({word(holds['whole_process_wall_seconds'])}). "
            f"Stock preset: up to {stock['seconds']} s wall, {stock['cpu_seconds']} CPU-s, {stock['peak_rss_mb']} MB. "
            "Wall times depend on the load of this shared box (load column)."
        )
    verdict = goal + (
        " Per-feature and dataset verdicts identical to the stock run in every case."
        if all_agree
        else f" Verdicts DIFFER from the stock run in {sum(not _agrees(c) for c in cases)} of {len(cases)} cases "
        "(see the table)."
    )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "reference_rows": REFERENCE_ROWS,
        "sample_rows": config.sample_rows,
        "drift_share": config.drift_share,
        "cases": cases,
        "goal": {"seconds": GOAL_SECONDS, "peak_rss_mb": GOAL_MB, "holds": holds},
        "verdicts_identical": all_agree,
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
