"""The one image: multi-stage, base pinned by digest, installed from uv.lock, non-root.

No container engine runs here, so these read the Dockerfile; `make images` builds it. Whether every
locked wheel exists for arm64 is tests/unit/test_arm64_wheels.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.cluster import CHART, ROOT

# the one image and where its Dockerfile lives (repository root)
IMAGES = {".": "mlstack"}


def dockerfile(area: str) -> str:
    path = ROOT / area / "Dockerfile"
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing")
    return path.read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def resolve_args(text: str, value: str) -> str:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)


@pytest.mark.parametrize("area", sorted(IMAGES))
def test_multi_stage_with_a_base_pinned_by_digest(area):
    text = dockerfile(area)
    froms = [resolve_args(text, args) for word, args in instructions(text) if word == "FROM"]
    assert len(froms) >= 2, "build and runtime stages"
    for base in froms:
        image = base.split()[0]
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{area}: base {image} is not pinned by digest"


@pytest.mark.parametrize("area", sorted(IMAGES))
def test_installs_from_the_lock_without_dev_dependencies(area):
    runs = [args for word, args in instructions(dockerfile(area)) if word == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all("--frozen" in r and "--no-dev" in r for r in syncs), syncs
    assert not any("pip install" in r and "uv" not in r for r in runs), "dependencies come from uv.lock only"


@pytest.mark.parametrize("area", sorted(IMAGES))
def test_runs_as_the_non_root_uid_the_chart_expects(area):
    steps = instructions(dockerfile(area))
    users = [args for word, args in steps if word == "USER"]
    assert users, f"{area}: no USER, the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid lets Kubernetes verify runAsNonRoot"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["security"]["runAsUser"]
    # the user is set in the last stage, after the last FROM
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert any(word == "USER" for word, _ in steps[last_from:])


@pytest.mark.parametrize("area", sorted(IMAGES))
def test_final_stage_copies_only_the_built_environment(area):
    steps = instructions(dockerfile(area))
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    copies = [args for word, args in steps[last_from:] if word == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "no sources or uv in the runtime image"


def test_build_context_excludes_local_state():
    """An allow-list: everything is excluded, then only what the image installs is let back in."""
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    for path in (".venv", ".git", ".mlstack", ".tools", "tests", "bin"):
        assert path not in allowed


def test_chart_makefile_and_components_use_the_one_image():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    ours = {k for k, v in values["images"].items() if not v["repository"].startswith("docker.io/")}
    assert ours == {"mlstack"} and values["images"]["mlstack"]["repository"] == "mlstack"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^IMAGE := mlstack$", makefile, re.M)
    assert "build -f Dockerfile -t $(REGISTRY)/$(IMAGE):$(IMAGE_TAG) ." in makefile
    from mlstack.components.image import COMPONENT_IMAGE

    assert COMPONENT_IMAGE.rsplit("/", 1)[-1].split(":")[0] == "mlstack"
    assert not [p for p in ROOT.glob("*/Dockerfile")], "one Dockerfile, at the repository root"


def test_build_stage_can_compile_what_has_no_arm64_wheel():
    """psutil 5.9.8 (kserve pins psutil<6) has no linux-aarch64 wheel: the build stage needs gcc."""
    steps = instructions(dockerfile("."))
    first_runtime = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    build_runs = " ".join(args for word, args in steps[:first_runtime] if word == "RUN")
    runtime_runs = " ".join(args for word, args in steps[first_runtime:] if word == "RUN")
    assert "gcc" in build_runs and "libc6-dev" in build_runs
    assert "gcc" not in runtime_runs, "the compiler stays out of the runtime image"


def test_dockerfiles_copy_every_package_the_wheel_needs():
    """uv builds the project wheel from these folders; a missing COPY breaks the build."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
        "wheel"
    ]["packages"]
    # mlstack/components etc. are symlinks to the top-level folders: their targets must be copied too
    linked = {p.resolve().name for p in (ROOT / "mlstack").iterdir() if p.is_symlink()}
    assert linked == {"components", "pipelines", "serving", "monitoring"}
    packages = [*packages, *sorted(linked)]
    for area in IMAGES:
        copied = {
            Path(args.split()[0]).name
            for word, args in instructions(dockerfile(area))
            if word == "COPY" and not args.startswith("--from")
        }
        assert set(packages) <= copied, f"{area}: not copied {set(packages) - copied}"
