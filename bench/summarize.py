"""Write bench/results/summary.md from every per-area result table (bench/results/<area>.md)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    tables = sorted(p for p in RESULTS.glob("*.md") if p.name != "summary.md")
    if not tables:
        print(
            "no benchmark results in bench/results/: run make bench-serving / bench-drift / bench-batch",
            file=sys.stderr,
        )
        return 1
    lines = [
        "# mlstack benchmarks",
        "",
        f"Collected {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python {platform.python_version()}.",
        "Each section is the table its benchmark wrote; the JSON beside it holds every figure.",
        "",
    ]
    for table in tables:
        data = table.with_suffix(".json")
        stamp = f" (run {_run_at(data if data.is_file() else table)})"
        lines += [f"## {table.stem}{stamp}", "", table.read_text().strip(), ""]
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'summary.md'} from {len(tables)} result tables")
    return 0


def _run_at(path: Path) -> str:
    """When the result was made: the JSON's ``started``, else the commit that holds the unchanged
    file (a clone's file times are the clone's), else the file's time."""
    if path.suffix == ".json":
        try:
            started = json.loads(path.read_text()).get("started")
        except (OSError, ValueError, AttributeError):
            started = None
        if isinstance(started, str):
            return started
    git = ["git", "-C", str(path.parent)]
    try:
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", path.name], capture_output=True, text=True
        )
        committed = subprocess.run(
            [*git, "log", "-1", "--format=%cI", "--", path.name], capture_output=True, text=True
        )
        if dirty.returncode == 0 and not dirty.stdout.strip() and committed.stdout.strip():
            return f"{committed.stdout.strip()}, committed"
    except OSError:
        pass
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return f"{written:%Y-%m-%dT%H:%M}Z, file time"


if __name__ == "__main__":
    sys.exit(main())
