"""Both command-line entry points answer --version."""

from __future__ import annotations


def test_both_clis_have_version():
    import subprocess
    import sys

    for module in ("mlstack.cli.main", "mlstack.cli.kubectl_model"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and done.stdout.strip() == "mlstack 0.1.0", (module, done)
