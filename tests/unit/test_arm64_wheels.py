"""Every package the image installs has a wheel for linux/arm64 (Apple Silicon, Graviton), or is one
the Dockerfile's build stage can build: resolved from uv.lock's own file lists, offline.

The same question asked of PyPI itself is ``make arm64-wheels`` (``uv pip compile`` for
aarch64-manylinux_2_28, binary-only except the packages listed here); on the development machine it
failed on psutil 5.9.8 and nothing else before the sdist exception below.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib

import pytest
from packaging.markers import Marker
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.fixtures.cluster import ROOT

pytestmark = pytest.mark.unit

# packages with no linux-aarch64 wheel in uv.lock and why the arm64 build still works
BUILT_FROM_SDIST = {
    # kserve 0.21.0 pins psutil<6; 5.9.8 ships no linux-aarch64 wheel. A C extension: the
    # Dockerfile's build stage installs gcc + libc6-dev (python:slim has the headers).
    "psutil": "C extension, compiled in the build stage",
    # published as an sdist only, for every platform (also amd64); pure Python
    "kfp-server-api": "pure Python, sdist only on every platform",
}
# python:3.11-slim-bookworm is Debian 12: glibc 2.36
GLIBC_MINOR = 36
AARCH64_LINUX_ENV = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.11.0",
    "python_version": "3.11",
    "sys_platform": "linux",
    "extra": "",
}


def aarch64_tags() -> set:
    platforms = [f"manylinux_2_{m}_aarch64" for m in range(GLIBC_MINOR, 16, -1)]
    platforms += ["manylinux2014_aarch64", "linux_aarch64"]
    return set(cpython_tags((3, 11), platforms=platforms)) | set(
        compatible_tags((3, 11), "cp311", platforms=platforms)
    )


def uv() -> str:
    found = ROOT / ".tools" / "bin" / "uv"
    if found.exists():
        return str(found)
    on_path = shutil.which("uv")
    if on_path is None:
        pytest.fail("uv is not installed (make setup installs it into .tools)")
    return on_path


def runtime_requirements() -> list[tuple[str, str]]:
    """(name, version) of every package `uv sync --frozen --no-dev` installs on linux/aarch64."""
    out = subprocess.run(
        [uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    pins = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        spec, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(AARCH64_LINUX_ENV):
            continue
        name, _, version = spec.strip().partition("==")
        pins.append((canonicalize_name(name), version))
    return pins


def without_aarch64_wheel() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {(canonicalize_name(p["name"]), p["version"]): p for p in lock["package"]}
    tags = aarch64_tags()
    missing = {}
    for name, version in runtime_requirements():
        package = packages[(name, version)]
        wheels = [w["url"].rsplit("/", 1)[-1] for w in package.get("wheels", [])]
        if not any(tag in tags for wheel in wheels for tag in parse_wheel_filename(wheel)[3]):
            missing[name] = version
    return missing


def test_the_lock_is_resolved_for_aarch64():
    pins = runtime_requirements()
    assert len(pins) > 100, "uv export returned too few packages to be the runtime closure"
    assert ("psutil", "5.9.8") in pins


def test_every_runtime_package_has_an_aarch64_wheel_or_a_build_path():
    missing = without_aarch64_wheel()
    unexplained = set(missing) - set(BUILT_FROM_SDIST)
    assert not unexplained, (
        f"no linux-aarch64 wheel in uv.lock for {sorted(unexplained)}: the arm64 image would build "
        "them from source; add a build path to the Dockerfile and list them in BUILT_FROM_SDIST"
    )
    stale = set(BUILT_FROM_SDIST) - set(missing)
    assert not stale, f"{sorted(stale)} now have aarch64 wheels: drop them from BUILT_FROM_SDIST"
