"""``kubectl model`` end to end: the real kubernetes client, a real MLflow registry, and InferenceServices
that KServe's and Knative's own controllers reconcile (``kube_api``: tests/fixtures/kserve_live.py).

Every status asserted here was written by KServe (the InferenceService) or Knative (the Route);
every patch went through KServe's webhooks and the API server's schema.
"""

from __future__ import annotations

import json

import yaml

from tests.fixtures.canary import run_plugin
from tests.fixtures.kserve_schema import assert_valid_isvc, validate_isvc


def patches(server) -> list[dict]:
    return [body for method, _, body in server.requests if method == "PATCH"]


def test_canary_status_promote_moves_traffic_and_aliases(kube_api, mlflow_registry, kubectl_model):
    ns = kube_api.namespace
    read_version = kube_api.objects[(ns, "fraud")]["metadata"]["resourceVersion"]
    code, out, err = kubectl_model("canary", "fraud", "--version", "2", "--percent", "10")
    assert code == 0, err
    obj = kube_api.objects[(ns, "fraud")]
    # the storage URI came from the registry, the patch was valid (the server checks), traffic split
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/1/models/m-2/artifacts"
    assert {t["revisionName"]: t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]} == {
        "fraud-predictor-00002": 10,
        "fraud-predictor-00001": 90,
    }
    assert patches(kube_api)[0]["metadata"]["resourceVersion"] == read_version

    code, out, err = kubectl_model("status", "fraud", "-o", "json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["phase"], status["canary%"], status["champion"], status["challenger"]) == (
        "canary",
        10,
        "1",
        "2",
    )
    assert status["aliases"] == "challenger=v2,champion=v1"

    code, out, err = kubectl_model("canary", "fraud", "--percent", "50")
    assert code == 0, err
    assert kube_api.objects[(ns, "fraud")]["spec"]["predictor"]["canaryTrafficPercent"] == 50
    assert kube_api.reconcilers.route_traffic(ns, "fraud") == {
        "fraud-predictor-00002": 50,
        "fraud-predictor-00001": 50,
    }

    code, out, err = kubectl_model("promote", "fraud")
    assert code == 0, err
    obj = kube_api.objects[(ns, "fraud")]
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["status"]["components"]["predictor"]["latestRolledoutRevision"] == "fraud-predictor-00002"
    aliases = mlflow_registry.get_registered_model("fraud").aliases
    assert aliases == {"champion": 2, "previous": 1}
    assert "mlflow: alias champion -> fraud v2" in out


def test_rollback_restores_champion_and_rejects_challenger(kube_api, mlflow_registry, kubectl_model):
    ns = kube_api.namespace
    assert kubectl_model("canary", "fraud", "--version", "2", "--percent", "20")[0] == 0
    code, out, err = kubectl_model("rollback", "fraud", "--reason", "accuracy down 5 points")
    assert code == 0, err
    sent = patches(kube_api)[-2:]
    assert sent[0]["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    obj = kube_api.objects[(ns, "fraud")]
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/1/models/m-1/artifacts"
    # KServe: the restored champion spec is a new revision (00003) at 0 %, the rolled-out one keeps 100 %.
    # The stand-in this replaced wrote example.com: the Route's URLs carry the domain the platform's
    # config-domain sets (manifests/platform/knative-serving/config-domain.yaml)
    assert obj["status"]["components"]["predictor"]["traffic"] == [
        {"latestRevision": True, "percent": 0, "revisionName": "fraud-predictor-00003"},
        {
            "tag": "prev",
            "revisionName": "fraud-predictor-00001",
            "latestRevision": False,
            "percent": 100,
            "url": f"http://prev-fraud-predictor.{ns}.127.0.0.1.sslip.io",
        },
    ]
    assert mlflow_registry.get_registered_model("fraud").aliases == {"champion": 1}
    assert mlflow_registry.get_model_version("fraud", "2").tags["rejected"] == "accuracy down 5 points"


def test_dry_run_prints_the_patch_and_sends_nothing(kube_api, mlflow_registry, kubectl_model):
    code, out, err = kubectl_model("canary", "fraud", "--version", "3", "--dry-run", "-o", "json")
    assert code == 0, err
    patch = json.loads(out)
    assert validate_isvc(patch, patch=True) == []
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] == 10  # canary.initial_percent
    assert patches(kube_api) == []
    assert "would then move in MLflow: tag fraud v3 canary_percent=10; alias challenger -> fraud v3" in err


def test_unsafe_and_wrong_moves_fail_with_one_line(kube_api, mlflow_registry, kubectl_model):
    code, out, err = kubectl_model("promote", "fraud")
    assert (code, err.strip()) == (
        1,
        "error: no canary in flight on 'fraud' (phase stable); nothing to promote",
    )
    code, out, err = kubectl_model("status", "nope")
    assert (
        code == 1
        and err.strip() == f"error: InferenceService 'nope' not found in namespace '{kube_api.namespace}'"
    )
    code, out, err = kubectl_model("canary", "fraud", "--version", "9")
    assert code == 2 and "version 9 is not in the MLflow registry" in err
    assert "Traceback" not in err
    assert patches(kube_api) == []


def test_manifest_mode_prints_valid_objects_from_the_console_script(tmp_path):
    """The acceptance line: `kubectl model canary NAME --version V --percent 10 -f isvc.yaml --dry-run -o yaml`."""
    from tests.fixtures.kserve_recorded import recorded

    live = recorded("stable")  # as KServe and Knative left it (tests/integration/test_kserve_phases.py)
    manifest = tmp_path / "isvc.yaml"
    manifest.write_text(yaml.safe_dump(live))
    env = {"MLSTACK_HOME": str(tmp_path / "home"), "KUBECONFIG": str(tmp_path / "missing")}

    started = run_plugin(
        "canary",
        "fraud",
        "--version",
        "2",
        "--percent",
        "10",
        "-f",
        str(manifest),
        "--dry-run",
        "-o",
        "yaml",
        "--storage-uri",
        "s3://mlflow/1/models/m-2/artifacts",
        env=env,
    )
    assert started.returncode == 0, started.stderr
    canary_obj = yaml.safe_load(started.stdout)
    assert_valid_isvc(canary_obj)
    assert canary_obj["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert "status" not in canary_obj

    # promote and rollback work on a canary manifest carrying the status KServe wrote for it
    in_flight = tmp_path / "canary.yaml"
    in_flight.write_text(yaml.safe_dump(recorded("canary-10")))
    champion = "s3://mlflow/1/models/m-1/artifacts"
    for command, check in (
        ("promote", lambda o: "canaryTrafficPercent" not in o["spec"]["predictor"]),
        ("rollback", lambda o: o["spec"]["predictor"]["model"]["storageUri"] == champion),
    ):
        result = run_plugin(command, "fraud", "-f", str(in_flight), "--dry-run", "-o", "yaml", env=env)
        assert result.returncode == 0, result.stderr
        obj = yaml.safe_load(result.stdout)
        assert_valid_isvc(obj)
        assert check(obj), obj

    bad = run_plugin(
        "canary",
        "fraud",
        "--version",
        "2",
        "--percent",
        "150",
        "-f",
        str(manifest),
        "--storage-uri",
        "s3://x",
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --percent must be between 1 and 100, got 150"


def test_context_and_namespace_follow_kubectl_habits(
    kube_api, kubectl_model, tmp_path, monkeypatch, mlstack_home
):
    import os

    config = yaml.safe_load(open(os.environ["KUBECONFIG"]))
    current = config["contexts"][0]["context"]
    config["contexts"].append(
        {
            "name": "staging",
            "context": {"cluster": current["cluster"], "user": current["user"], "namespace": "staging"},
        }
    )
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    code, _, err = kubectl_model("status", "fraud", "--context", "staging")
    assert code == 1 and "not found in namespace 'staging'" in err
    code, _, err = kubectl_model(
        "status", "fraud", "--context", "staging", "-n", kube_api.namespace, "-o", "wide"
    )
    assert code == 0, err
    code, _, err = kubectl_model("status", "fraud", "--context", "nope")
    assert code == 2 and "cannot load a kubeconfig" in err


def test_a_concurrent_write_is_a_conflict_not_a_lost_update(
    kube_api, mlflow_registry, kubectl_model, monkeypatch
):
    """Someone writes between our read and our patch: the server answers 409, we say so in one line."""
    from mlstack.adapters.kube import Kube

    real_get = Kube.get

    def get_then_someone_writes(self, name):
        obj = real_get(self, name)
        kube_api.plane.kubectl(
            "-n",
            kube_api.namespace,
            "annotate",
            "inferenceservice",
            name,
            "example.com/touched=yes",
            "--overwrite",
        )
        return obj

    monkeypatch.setattr(Kube, "get", get_then_someone_writes)
    code, _, err = kubectl_model("canary", "fraud", "--version", "2", "--percent", "10")
    assert (code, err.strip()) == (
        1,
        "error: InferenceService 'fraud' changed while we worked on it; run the command again",
    )
    monkeypatch.setattr(Kube, "get", real_get)
    obj = kube_api.objects[(kube_api.namespace, "fraud")]
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["metadata"]["annotations"]["example.com/touched"] == "yes"
