"""``kubectl model … -f`` on multi-document files, and keys or objects given twice.

The file is what a GitOps user keeps: the chart's own ``helm template`` output (real helm, the
pinned chart), dozens of documents with helm's ``# Source:`` comments. The plugin runs as the
installed console script. Before the fix the printed object held only the InferenceService (writing
it back deleted every other object), a second InferenceService of the same name was ignored, and a
key given twice kept its last value.
"""

from __future__ import annotations

import json
import re

import yaml

from tests.fixtures.canary import run_plugin
from tests.fixtures.cluster import CHART, NAMESPACE, RELEASE, helm, kube_version

NEW_URI = "s3://mlflow/1/models/m-2/artifacts"


def _rendered_chart() -> str:
    return helm("template", RELEASE, str(CHART), "-n", NAMESPACE, f"--kube-version=v{kube_version()}")


def _isvc(text: str) -> dict:
    (found,) = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "InferenceService"]
    return found


def _split(text: str) -> list[str]:
    return [chunk for chunk in re.split(r"^---\n", text, flags=re.M) if chunk.strip()]


def _env(tmp_path) -> dict[str, str]:
    return {"MLSTACK_HOME": str(tmp_path / "home"), "KUBECONFIG": str(tmp_path / "missing")}


def test_a_multi_document_file_round_trips(tmp_path):
    rendered = _rendered_chart()
    name = _isvc(rendered)["metadata"]["name"]
    path = tmp_path / "platform.yaml"
    path.write_text(rendered)
    started = run_plugin(
        "canary", name, "--version", "2", "--percent", "10", "--storage-uri", NEW_URI, "-f", str(path),
        env=_env(tmp_path),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    before, after = _split(rendered), _split(started.stdout)
    assert len(after) == len(before) > 10
    changed = [
        i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old.strip() != new.strip()
    ]
    assert len(changed) == 1  # every other document byte for byte, helm's "# Source:" comments included
    (index,) = changed
    assert after[index].startswith(before[index].split("\n", 1)[0])  # its own comment line kept too
    canary = _isvc(started.stdout)
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert canary["spec"]["predictor"]["model"]["storageUri"] == NEW_URI

    # written back over the file, the next move works on it and keeps everything again
    path.write_text(started.stdout)
    rolled = run_plugin("rollback", name, "-f", str(path), env=_env(tmp_path))
    assert rolled.returncode == 0, rolled.stderr
    assert len(_split(rolled.stdout)) == len(before)
    assert _isvc(rolled.stdout)["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_json_output_of_a_multi_document_file_is_a_list(tmp_path):
    rendered = _rendered_chart()
    name = _isvc(rendered)["metadata"]["name"]
    (tmp_path / "platform.yaml").write_text(rendered)
    done = run_plugin(
        "canary", name, "--version", "2", "--storage-uri", NEW_URI, "-f", str(tmp_path / "platform.yaml"),
        "-o", "json", env=_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)  # what kubectl get -o json prints for several objects
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    objects = [d for d in yaml.safe_load_all(rendered) if d]
    assert len(listed["items"]) == len(objects)
    for old, new in zip(objects, listed["items"], strict=True):
        if old["kind"] != "InferenceService":
            assert new == old
    (canary,) = [item for item in listed["items"] if item["kind"] == "InferenceService"]
    assert canary["spec"]["predictor"]["model"]["storageUri"] == NEW_URI


def _two_documents(tmp_path, second_namespace: str | None) -> tuple[str, str]:
    """The chart's InferenceService twice, the second pointing elsewhere (and in another namespace)."""
    isvc = _isvc(_rendered_chart())
    other = json.loads(json.dumps(isvc))
    if second_namespace:
        other["metadata"]["namespace"] = second_namespace
    other["spec"]["predictor"]["model"]["storageUri"] = "s3://mlflow/somewhere-else"
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([isvc, other], sort_keys=False))
    return str(path), isvc["metadata"]["name"]


def test_two_inference_services_of_one_name_are_refused(tmp_path):
    path, name = _two_documents(tmp_path, second_namespace=None)
    done = run_plugin("rollback", name, "-f", path, env=_env(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"error: {path} holds 2 InferenceServices named {name!r} (documents 1, 2): the command would work "
        "on one and leave the other; keep one (or pick one with -n NAMESPACE)"
    )
    assert done.stdout == ""


def test_namespace_picks_one_of_two_same_named_services(tmp_path):
    path, name = _two_documents(tmp_path, second_namespace="staging")
    done = run_plugin("status", name, "-f", path, "-n", "staging", "-o", "wide", env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "s3://mlflow/somewhere-else" in done.stdout


def test_a_key_given_twice_is_refused_like_the_api_server(tmp_path):
    rendered = _rendered_chart()
    name = _isvc(rendered)["metadata"]["name"]
    lines = rendered.splitlines()
    kind = lines.index("kind: InferenceService")  # the document itself, not a template held in a ConfigMap
    at = next(i for i in range(kind, len(lines)) if lines[i].strip().startswith("storageUri:"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at + 1, f"{indent}storageUri: s3://mlflow/typo")
    path = tmp_path / "dup.yaml"
    path.write_text("\n".join(lines) + "\n")
    done = run_plugin("canary", name, "--percent", "20", "-f", str(path), env=_env(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    # the API server's strict decoding says 'line N: key "storageUri" already set in map' (1-based)
    assert done.stderr.strip() == (
        f'error: {path}: line {at + 2}: key "storageUri" already set in map: a key given twice in one '
        "object is refused by the API server's strict field validation (kubectl's default); keep one"
    )
    assert done.stdout == ""
