"""Batch scoring benchmark: rows/s, CPU and peak memory of ``score_table`` on a 2M-row Parquet input.

Run with ``make bench-batch`` (``BATCH_BENCH_ROWS`` changes the size). One run measures side by side:

- **today**: ``score_table`` as it was at ``BATCH_BENCH_BASELINE`` (default 6ac163f, main when issue
  24 measured 155k rows/s; its tree is exported with ``git archive`` into ``bench/.work/``), with the
  scikit-learn engine the previous benchmark measured and with the compiled engine it would pick;
- **now**: this checkout's ``score_table`` with the scikit-learn engine and with the compiled ONNX
  engine (the model directory comes from the registration path, ``components/compile.save_model_dir``:
  the artifact is attached only because its parity gate passed).

Each measurement runs in a fresh child process pinned to one core (``taskset``) when the machine has
more than one: rows/s, CPU seconds (``getrusage``) and peak RSS (``VmHWM``, model loading included).
Goal (issue 24, goal 4): the compiled engine at >= 3x today's rows/s on the 2M-row Parquet, peak
RSS <= 1.5 GB. Inputs are generated piece by piece into ``bench/.work/``, 1% of rows breaking the
contract. Results go to ``bench/results/batch.json`` and ``.md`` with the load average.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "batch"
RESULTS = ROOT / "bench" / "results"
LIMIT_MB = 1536
GOAL_RATIO = 3.0
# main when issue 24 measured 155k rows/s; components/batch_* are unchanged from it to this branch's base
BASELINE = os.environ.get("BATCH_BENCH_BASELINE", "6ac163f")


def _write_input(path: Path, rows: int, csv: bool) -> None:
    """Generate ``rows`` loan rows in 250k-row pieces (different seeds), 1% of them breaking the contract."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from mlstack.core.generator import generate

    if path.exists():
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer = None
    for piece, start in enumerate(range(0, rows, 250_000)):
        frame = generate(min(250_000, rows - start), seed=1000 + piece)
        frame.loc[frame.index[::100], "credit_score"] = 2000  # every 100th row: above the contract's max
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pacsv.CSVWriter(tmp, table.schema) if csv else pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.rename(path)


def _model_dir() -> tuple[Path, str]:
    """The training step's pipeline saved as registration saves it (compiled artifact if its gate passed)."""
    from mlstack.components.compile import save_model_dir
    from mlstack.components.train import train
    from mlstack.core.generator import generate, loan_contract
    from mlstack.core.settings import CompileConfig, TrainingConfig

    target = WORK / "model"
    gate = target / "gate.json"
    if not (target / "MLmodel").exists():
        contract = loan_contract()
        pipeline = train(generate(20_000, seed=7), contract, TrainingConfig(seed=7))
        result = save_model_dir(pipeline, target, contract, 0.3, generate(5000, seed=8), CompileConfig())
        gate.write_text(
            json.dumps({"attached": result.attached, "reason": result.reason, **result.measured}, default=str)
        )
    return target, gate.read_text()


def _baseline_tree() -> Path | None:
    """``BASELINE``'s tree exported into bench/.work (None when git or the commit is not there)."""
    target = WORK / f"baseline-{BASELINE}"
    if (target / "mlstack").exists():
        return target
    if shutil.which("git") is None:
        return None
    archive = subprocess.run(["git", "archive", BASELINE], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        return None
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


CHILD = """
import json, resource, sys, time
def hwm():  # this process's peak RSS in MB (VmHWM; ru_maxrss would include the forking parent's)
    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
    return int(line.split()[1]) / 1024
from mlstack.components.batch_score import score_table
from mlstack.core.model import load
model = load(sys.argv[1], name='bench', version='1', engine=sys.argv[5])
loaded = hwm()
before = resource.getrusage(resource.RUSAGE_SELF)
summary = score_table(model, sys.argv[2], sys.argv[3], run_id='bench', chunk_rows=int(sys.argv[4]))
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps(summary.to_dict() | {'peak_rss_mb': round(hwm(), 1), 'model_loaded_rss_mb': round(loaded, 1),
                                      'cpu_seconds': round(cpu, 2), 'engine_used': model.engine}))
"""


def _measure(tree: Path, model_dir: Path, source: Path, chunk_rows: int, engine: str) -> dict:
    """Score in a fresh child process (one core) with the code in ``tree``; its summary plus CPU and RSS."""
    out = WORK / f"{source.stem}-{source.suffix[1:]}-out.parquet"
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    started = time.perf_counter()
    done = subprocess.run(
        [*pin, sys.executable, "-c", CHILD, str(model_dir), str(source), str(out), str(chunk_rows), engine],
        capture_output=True,
        text=True,
        cwd=tree,  # `python -c` puts the working directory first on sys.path: that tree's mlstack runs
        env=os.environ | {"PYTHONPATH": str(tree)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"scoring with {tree} ({engine}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    out.unlink(missing_ok=True)
    Path(result["rejects"]).unlink(missing_ok=True)
    return result


def _row(label: str, code: str, source: Path, result: dict) -> dict:
    return {
        "run": label,
        "code": code,
        "engine": result["engine_used"],
        "input": source.name,
        "rows": result["rows"],
        "input_mb": round(source.stat().st_size / 2**20, 1),
        "scored": result["scored"],
        "rejected": result["rejected"],
        "input_fingerprint": result["input_fingerprint"],
        "seconds": round(result["seconds"], 2),
        "rows_per_second": round(result["rows_per_second"]),
        "cpu_seconds": result["cpu_seconds"],
        "rows_per_cpu_second": round(result["rows"] / max(result["cpu_seconds"], 1e-9)),
        "rss_after_model_load_mb": result["model_loaded_rss_mb"],
        "peak_rss_mb": result["peak_rss_mb"],
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_at_start = [round(x, 1) for x in os.getloadavg()]
    rows = int(os.environ.get("BATCH_BENCH_ROWS", 2_000_000))
    chunk_rows = int(os.environ.get("BATCH_BENCH_CHUNK_ROWS", 50_000))
    WORK.mkdir(parents=True, exist_ok=True)
    model_dir, gate = _model_dir()
    baseline = _baseline_tree()
    parquet, csv = WORK / f"loans-{rows}.parquet", WORK / f"loans-{rows}.csv"
    _write_input(parquet, rows, csv=False)
    _write_input(csv, rows, csv=True)
    plan = []
    if baseline is not None:
        plan += [
            ("today, scikit-learn", baseline, parquet, "sklearn"),
            ("today, compiled", baseline, parquet, "auto"),
        ]
    plan += [
        ("now, scikit-learn", ROOT, parquet, "sklearn"),
        ("now, compiled", ROOT, parquet, "auto"),
        ("now, compiled, CSV", ROOT, csv, "auto"),
    ]
    runs = []
    for label, tree, source, engine in plan:
        code = f"{BASELINE} (git archive)" if tree != ROOT else "this checkout"
        runs.append(_row(label, code, source, _measure(tree, model_dir, source, chunk_rows, engine)))
        print(json.dumps(runs[-1]), flush=True)
    report = _report(runs, rows, chunk_rows, gate, baseline is not None)
    report |= {"started": started, "load_average_at_start": load_at_start}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "batch.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


def _report(runs: list[dict], rows: int, chunk_rows: int, gate: str, with_baseline: bool) -> dict:
    by = {run["run"]: run for run in runs}
    now = by["now, compiled"]
    goals = []
    today = by.get("today, scikit-learn")
    if today is not None:
        wall = now["rows_per_second"] / today["rows_per_second"]
        cpu = now["rows_per_cpu_second"] / today["rows_per_cpu_second"]
        goals.append(
            {
                "goal": f"compiled engine >= {GOAL_RATIO:g}x today's rows/s on the {rows:,}-row Parquet",
                "measured": f"{now['rows_per_second']:,} vs {today['rows_per_second']:,} rows/s; "
                f"{now['rows_per_cpu_second']:,} vs {today['rows_per_cpu_second']:,} rows per CPU-s",
                "ratio": f"{wall:.2f}x wall, {cpu:.2f}x per CPU-second",
                "met": wall >= GOAL_RATIO and cpu >= GOAL_RATIO,
            }
        )
    peak = max(run["peak_rss_mb"] for run in runs if run["code"] == "this checkout")
    goals.append(
        {
            "goal": f"peak RSS <= {LIMIT_MB} MB",
            "measured": f"{peak} MB",
            "ratio": f"{peak / LIMIT_MB:.2f}x of the limit",
            "met": peak <= LIMIT_MB,
        }
    )
    same = {
        (run["scored"], run["rejected"], run["input_fingerprint"])
        for run in runs
        if run["input"].endswith(".parquet")
    }
    goals.append(
        {
            "goal": "same rejects and lineage on every engine and code",
            "measured": f"{len(same)} distinct (scored, rejected, fingerprint) over the Parquet runs",
            "ratio": "-",
            "met": len(same) == 1,
        }
    )
    return {
        "benchmark": "batch scoring (score_table: fingerprint pass + validate + predict + write), one core per run",
        "rows": rows,
        "chunk_rows": chunk_rows,
        "baseline": BASELINE if with_baseline else None,
        "compile_gate": json.loads(gate),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        "runs": runs,
        "goals": goals,
    }


def _markdown(report: dict) -> str:
    lines = [
        "# Batch scoring benchmark (`make bench-batch`)",
        "",
        f"Run {report['started']}: {report['benchmark']}; chunk {report['chunk_rows']:,} rows; "
        f"{report['machine']}; load average (1, 5, 15 min) {report['load_average_at_start']} at the start, "
        f"{report['load_average_at_end']} at the end (a shared machine: CPU seconds are the steadier "
        f"figure, wall seconds include waiting for the core). 'today' = `score_table` at "
        f"{report['baseline']} (exported with git archive), run in the same benchmark. Inputs: the "
        "generator's loan table, 1% of rows breaking the contract. Wall and CPU of the scoring call; "
        "peak RSS of the whole child process.",
        "",
        "| run | engine | input | rows | scored | rejected | seconds | rows/s | CPU s | rows per CPU-s | "
        "RSS after model load MB | peak RSS MB | load 1m |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['run']} | {r['engine']} | {r['input']} | {r['rows']:,} | {r['scored']:,} | {r['rejected']:,} | "
            f"{r['seconds']} | {r['rows_per_second']:,} | {r['cpu_seconds']} | {r['rows_per_cpu_second']:,} | "
            f"{r['rss_after_model_load_mb']} | {r['peak_rss_mb']} | {r['load_average_1m']} |"
            for r in report["runs"]
        ),
        "",
        "## Goals (issue 24, goal 4)",
        "",
        "| goal | measured | ratio | |",
        "|---|---|---|---|",
        *(
            f"| {g['goal']} | {g['measured']} | {g['ratio']} | {'met' if g['met'] else 'NOT MET'} |"
            for g in report["goals"]
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
