"""With the Pushgateway unreachable, `mlstack drift` still prints its verdict."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlstack.core.generator import generate


@pytest.fixture(scope="module")
def reference():
    return generate(1200, seed=1)


def test_an_unreachable_pushgateway_still_prints_the_verdict(tmp_path, reference, mlstack_home):
    from tests.conftest import ROOT, free_port

    reference.to_parquet(tmp_path / "reference.parquet")
    generate(1100, seed=4).to_parquet(tmp_path / "current.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli.main",
            "drift",
            "--model",
            "loan",
            "--reference",
            str(tmp_path / "reference.parquet"),
            "--current",
            str(tmp_path / "current.parquet"),
            "--pushgateway",
            f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "--workspace",
            str(tmp_path / "ws"),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "ok" and isinstance(result["drift_detected"], bool)
    assert result["published"] is False and "Pushgateway" in result["publish_error"]
    assert "warning:" in done.stderr and "Traceback" not in done.stderr
