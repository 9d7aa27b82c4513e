"""A command's options are the explicit layer of the one settings loader: option > environment > file > default.

``mlstack.cli.common.settings_from`` is what every command calls; an option not given (None) leaves
the value to the lower layers, and a given one is checked like any other setting, never silently
replaced by a default.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from mlstack.cli.common import settings_from
from mlstack.core.settings import ConfigError

pytestmark = pytest.mark.unit


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("MLSTACK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path))
    return monkeypatch


def test_an_option_beats_the_environment_and_the_file_and_keeps_their_other_values(env, tmp_path):
    config = tmp_path / "user.yaml"
    config.write_text(yaml.safe_dump({"serving": {"port": 7000, "workers": 3}}))
    env.setenv("MLSTACK_SERVING__PORT", "7100")
    env.setenv("MLSTACK_SERVING__HOST", "10.1.2.3")
    serving = settings_from(str(config), serving={"port": 7200, "workers": None}).serving
    assert (serving.port, serving.host, serving.workers) == (7200, "10.1.2.3", 3)
    serving = settings_from(str(config), serving={"port": None}).serving  # not given: the environment's
    assert serving.port == 7100


def test_a_given_option_is_checked_like_the_setting_it_overrides(env):
    with pytest.raises(ConfigError, match="batch.chunk_rows"):
        settings_from(None, batch={"chunk_rows": 0})
    assert settings_from(None, stream={"kafka": {"bootstrap_servers": None}}).stream.kafka == (
        settings_from(None).stream.kafka
    )


def test_an_empty_window_is_refused_not_replaced_by_the_default(env, tmp_path):
    """Before, ``--window ''`` fell back to drift.window (1h) and the job ran on a window nobody asked for."""
    done = subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "drift", "--model", "m", "--window", ""],
        capture_output=True,
        text=True,
        env={**os.environ, "MLSTACK_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --window '' is not a duration like 15m, 1h or 2d"
