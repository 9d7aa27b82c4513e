"""What the pipeline's train step uses: peak RSS and CPU seconds, per estimator, on the default data size.

Run with ``make bench-train`` (``TRAIN_BENCH_ROWS``, default 50 000: `mlstack data generate`'s
default). The step's own body (``train_op.python_func``: read the ingest step's Parquet, split, fit,
write the model and both splits) runs in a fresh child process per estimator, as in its pod; the
child reports its ``VmHWM`` (peak RSS, imports included) and ``getrusage`` user+system CPU seconds.
CPU seconds do not depend on how loaded the machine is; wall time does, and is only reported.
These numbers size the step's requests in ``pipelines/training.py``. Results go to
``bench/results/train.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "train"
RESULTS = ROOT / "bench" / "results"
ESTIMATORS = ("logistic_regression", "hist_gradient_boosting", "random_forest")

CHILD = """
import json, os, resource, sys, time
started = time.monotonic()
from types import SimpleNamespace
from mlstack.components.training_ops import train_op
from mlstack.core.settings import load_settings
work, estimator = sys.argv[1], sys.argv[2]
settings = load_settings(shipped="pipelines/config/training.yaml")
config = settings.training.model_copy(update={"estimator": estimator, "params": {} if estimator != settings.training.estimator else settings.training.params})
out = lambda name: SimpleNamespace(path=os.path.join(work, estimator + "-" + name), metadata={})
contract = open("pipelines/config/loan_contract.yaml").read()
train_op.python_func(SimpleNamespace(path=os.path.join(work, "dataset")), contract, config.model_dump_json(), out("model"), out("train"), out("eval"))
usage = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mib": round(hwm / 1024, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "wall_seconds": round(time.monotonic() - started, 2)}))
"""


def _dataset(rows: int) -> Path:
    """The ingest step's output for ``rows`` generated rows (Parquet, as ``ingest_op`` writes it)."""
    from mlstack.core import data as dataio
    from mlstack.core.generator import generate

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "dataset"
    marker = WORK / f"rows-{rows}"
    if not marker.exists():
        dataio.save_table(generate(rows, seed=1), str(path))
        marker.touch()
    return path


def measure(estimator: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(WORK), estimator],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "MLSTACK_LOG_LEVEL": "WARNING"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"train step ({estimator}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = int(os.environ.get("TRAIN_BENCH_ROWS", "50000"))
    _dataset(rows)
    results = {name: measure(name) for name in ESTIMATORS}
    report = {
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load1": os.getloadavg()[0]},
        "estimators": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Train step resources ({rows} rows, `make bench-train`)",
        "",
        "The step's own body in a fresh process per estimator; peak RSS includes the imports.",
        f"Machine: {os.cpu_count()} CPUs, 1-minute load {report['machine']['load1']:.1f} while measuring"
        " (wall time depends on it, CPU seconds do not).",
        "",
        "| estimator | peak RSS (MiB) | CPU seconds | wall seconds |",
        "|---|---:|---:|---:|",
    ]
    for name, numbers in results.items():
        lines.append(
            f"| {name} | {numbers['peak_rss_mib']} | {numbers['cpu_seconds']} | {numbers['wall_seconds']} |"
        )
    (RESULTS / "train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
