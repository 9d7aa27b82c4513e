"""Every image pinned by digest is either checked against upstream source at its tag, or listed as not verified.

kind's node image: kind's own source at ``KIND_VERSION`` names the node image that release was built
and tested with (sigs.k8s.io/kind ``pkg/apis/config/defaults/image.go``, ``const Image``; the release
notes print the same string), read from the Go module pinned in tools/upstream/go.mod. The other
digests (Docker Hub images) have no upstream source file holding them and no registry is reachable
here: docs/cluster.md must say so for each.
"""

from __future__ import annotations

import re

import yaml

from tests.fixtures.cluster import CHART, ROOT, versions

KIND = "sigs.k8s.io/kind"


def test_the_kind_node_image_is_the_one_kind_ships_at_the_pinned_tag():
    from tests.fixtures.upstream import module_dir, module_version

    pinned = versions()
    assert module_version(KIND) == pinned["KIND_VERSION"]
    source = (module_dir(KIND) / "pkg" / "apis" / "config" / "defaults" / "image.go").read_text()
    match = re.search(r'const Image = "([^"]+)"', source)
    assert match, "kind's default image constant moved"
    assert match.group(1) == pinned["KIND_NODE_IMAGE"]
    config = yaml.safe_load((ROOT / "manifests" / "kind-config.yaml").read_text())
    assert {node["image"] for node in config["nodes"]} == {pinned["KIND_NODE_IMAGE"]}


def _unverified() -> dict[str, str]:
    """Image -> digest for every digest pin no upstream source here can confirm."""
    found = {}
    dockerfile = (ROOT / "Dockerfile").read_text()
    for image, digest in re.findall(r"=([\w./:-]+)@(sha256:[0-9a-f]{64})", dockerfile):
        found[image] = digest
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for spec in values["images"].values():
        if spec.get("digest"):
            found[f"{spec['repository']}:{spec['tag']}"] = spec["digest"]
    return found


def test_every_other_digest_is_listed_as_not_verified_here():
    unverified = _unverified()
    assert len(unverified) >= 3  # python base, postgres, pushgateway: the collector sees them
    text = (ROOT / "docs" / "cluster.md").read_text()
    section = text.split("### Pinned images", 1)[1].split("\n## ", 1)[0]
    assert "not verified here" in section
    for image, digest in unverified.items():
        assert f"`{image}@{digest}`" in section, f"docs/cluster.md must list {image}@{digest} as not verified"
