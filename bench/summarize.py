"""Write bench/results/summary.md from every per-area result table (bench/results/<area>.md)."""

from __future__ import annotations

import platform
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
        written = datetime.fromtimestamp((data if data.is_file() else table).stat().st_mtime, UTC)
        stamp = f" (written {written:%Y-%m-%d %H:%M} UTC)"
        lines += [f"## {table.stem}{stamp}", "", table.read_text().strip(), ""]
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'summary.md'} from {len(tables)} result tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
