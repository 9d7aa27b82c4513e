"""Batch scoring benchmark: peak memory (RSS) and rows/s of ``score_table`` on multi-million-row inputs.

Run with ``make bench-batch`` (``BATCH_BENCH_ROWS`` to change the size). Inputs are generated chunk by
chunk into ``bench/.work/``; each measurement runs in a fresh child process whose peak RSS is read
from ``VmHWM`` in ``/proc/self/status`` at the end (the high-water mark of the whole run, model loading included). A small
input is measured too: flat memory means the big run peaks about where the small one does.
Results go to ``bench/results/batch.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "batch"
RESULTS = ROOT / "bench" / "results"
LIMIT_MB = 1536


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
    writer.close()
    tmp.rename(path)


def _model_dir() -> Path:
    """Fit and save (MLflow format, mlstack metadata) the model the benchmark scores with."""
    import mlflow.sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlstack.core.generator import generate, loan_contract
    from mlstack.core.model import coerce_features, metadata_for

    target = WORK / "model"
    if (target / "MLmodel").exists():
        return target
    contract = loan_contract()
    frame = generate(20_000, seed=7)
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
    )
    prep = ColumnTransformer(
        [("num", numeric, contract.numeric_features), ("cat", categorical, contract.categorical_features)]
    )
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))])
    pipeline.fit(coerce_features(frame, contract), frame["default"])
    mlflow.sklearn.save_model(
        pipeline,
        str(target),
        metadata=metadata_for(contract, 0.3),
        pip_requirements=["scikit-learn"],
        skops_trusted_types=["numpy.dtype"],
    )
    return target


def _measure(model_dir: Path, source: Path, chunk_rows: int) -> dict:
    """Score in a fresh child process; return its summary plus peak RSS."""
    code = (
        "import json, sys\n"
        "def hwm():  # this process's peak RSS in MB (VmHWM; ru_maxrss would include the forking parent's)\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "    return int(line.split()[1]) / 1024\n"
        "from mlstack.components.batch_score import score_table\n"
        "from mlstack.core.model import load\n"
        "model = load(sys.argv[1], name='bench', version='1')\n"
        "loaded = hwm()\n"
        "summary = score_table(model, sys.argv[2], sys.argv[3], run_id='bench', chunk_rows=int(sys.argv[4]))\n"
        "peak = hwm()\n"
        "print(json.dumps(summary.to_dict() | {'peak_rss_mb': round(peak, 1), 'model_loaded_rss_mb': round(loaded, 1)}))\n"
    )
    out = WORK / f"{source.stem}-{source.suffix[1:]}-out.parquet"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir), str(source), str(out), str(chunk_rows)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    out.unlink(missing_ok=True)
    Path(result["rejects"]).unlink(missing_ok=True)
    return result


def main() -> int:
    rows = int(os.environ.get("BATCH_BENCH_ROWS", 2_000_000))
    chunk_rows = int(os.environ.get("BATCH_BENCH_CHUNK_ROWS", 50_000))
    WORK.mkdir(parents=True, exist_ok=True)
    model_dir = _model_dir()
    runs = []
    for label, size, csv in [
        ("small parquet", 200_000, False),
        ("parquet", rows, False),
        ("csv", rows, True),
    ]:
        source = WORK / f"loans-{size}.{'csv' if csv else 'parquet'}"
        _write_input(source, size, csv)
        result = _measure(model_dir, source, chunk_rows)
        runs.append(
            {
                "input": label,
                "rows": result["rows"],
                "input_mb": round(source.stat().st_size / 2**20, 1),
                "scored": result["scored"],
                "rejected": result["rejected"],
                "seconds": round(result["seconds"], 2),
                "rows_per_second": round(result["rows_per_second"]),
                "rss_after_model_load_mb": result["model_loaded_rss_mb"],
                "peak_rss_mb": result["peak_rss_mb"],
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    report = {
        "benchmark": "batch scoring (score_table: fingerprint pass + validate + predict + write)",
        "chunk_rows": chunk_rows,
        "peak_rss_limit_mb": LIMIT_MB,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at the end",
        "runs": runs,
        "passed": all(run["peak_rss_mb"] < LIMIT_MB for run in runs),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Batch scoring benchmark",
        "",
        f"{report['benchmark']}; chunk {chunk_rows} rows; limit {LIMIT_MB} MB peak RSS; {report['machine']}.",
        "Inputs: the generator's loan table, 1% of rows breaking the contract (rejected with a reason).",
        "",
        "| input | rows | file MB | scored | rejected | seconds | rows/s | RSS after model load MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['input']} | {r['rows']:,} | {r['input_mb']} | {r['scored']:,} | {r['rejected']:,} | "
            f"{r['seconds']} | {r['rows_per_second']:,} | {r['rss_after_model_load_mb']} | {r['peak_rss_mb']} |"
            for r in runs
        ),
        "",
        f"Result: {'PASS' if report['passed'] else 'FAIL'} (every run under {LIMIT_MB} MB).",
    ]
    (RESULTS / "batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
