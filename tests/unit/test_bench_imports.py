"""Every benchmark module imports: `make bench` is not run by CI, so a moved helper is found here.

(`make bench-serving` once stopped at its first line because ``free_port`` had moved.)
"""

from __future__ import annotations

import importlib

import pytest

from tests.fixtures.cluster import ROOT

BENCH_MODULES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", BENCH_MODULES)
def test_bench_module_imports(name):
    importlib.import_module(f"bench.{name}")


def test_every_bench_module_is_listed():
    assert {"serving_bench", "serving_peers", "drift_bench", "batch_bench", "summarize"} <= set(BENCH_MODULES)
