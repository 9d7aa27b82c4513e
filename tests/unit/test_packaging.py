"""The wheel installs one top-level package, ``mlstack``; the four areas live under it.

Built here with uv and hatchling (the way the image builds it), then read and imported from the
unpacked wheel, not from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from tests.fixtures.cluster import ROOT

AREAS = ("components", "pipelines", "serving", "monitoring")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.is_file():
        pytest.fail(f"{uv} is missing: run `make setup`")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("mlstack-*.whl")
    return zipfile.ZipFile(path)


def test_only_mlstack_is_installed_at_the_top(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"mlstack"}


def test_each_area_and_its_data_is_inside_mlstack(wheel):
    names = set(wheel.namelist())
    for area in AREAS:
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / area).rglob("*.py")}
        assert {f"mlstack/{s}" for s in sources} <= names, area
    assert "mlstack/pipelines/config/training.yaml" in names  # DEFAULT_CONFIG of a wheel install


def test_the_unpacked_wheel_imports_under_mlstack(wheel, tmp_path):
    wheel.extractall(tmp_path)
    code = (
        "import mlstack, mlstack.serving.scoring, mlstack.components.batch_io, mlstack.pipelines.cluster_env;"
        "print(mlstack.__file__); print(mlstack.serving.scoring.__file__)"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(line.startswith(str(tmp_path)) for line in proc.stdout.split()), proc.stdout
