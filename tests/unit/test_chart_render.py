"""The chart renders (real ``helm template``) with default and kind values; our own contracts hold.

That every object of the default and kind renderings is valid for the real API server (schemas,
unknown fields, KServe's and the prometheus-operator's CRDs) is proven by installing it:
tests/integration/test_chart_install.py and test_server_refuses.py. The value variants rendered here
(extra models, parts switched off) are still checked offline with ``validate_object``.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from tests.fixtures.cluster import (
    CHART,
    KSERVE_KINDS,
    HelmFailed,
    by_kind,
    deep_merge,
    helm,
    isvc_templates,
    kube_version,
    named,
    render_objects,
    validate_kserve,
    validate_object,
    values_file,
)


def test_chart_lints_clean_against_the_pinned_kubernetes(tmp_path):
    for values in ([], ["-f", str(CHART / "values-kind.yaml")]):
        out = helm("lint", "--strict", f"--kube-version=v{kube_version()}", str(CHART), *values)
        assert "0 chart(s) failed" in out, out


def test_every_object_has_a_unique_kind_and_name(chart_objects):
    keys = [(o["kind"], o["metadata"]["name"]) for o in chart_objects]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_kserve_objects_are_checked_by_the_sdk_models(chart_objects):
    objects = chart_objects + isvc_templates(chart_objects)
    kinds = {o["kind"] for o in objects}
    assert {"InferenceService", "ClusterServingRuntime"} <= kinds & KSERVE_KINDS
    for template in isvc_templates(chart_objects):
        assert not validate_object(template), validate_object(template)


def test_kind_serves_only_what_the_registry_wrote(chart_kind, chart_default):
    """No InferenceService pointing at a path nothing writes; a template instead."""
    assert not by_kind(chart_kind, "InferenceService")
    (template,) = isvc_templates(chart_kind)
    assert template["metadata"]["name"] == "loan-default"
    assert template["spec"]["predictor"]["model"]["storageUri"] == ""
    # with a storageUri in the values the chart serves it, and the template is the same object unfilled
    served = copy.deepcopy(by_kind(chart_default, "InferenceService")[0])
    (default_template,) = isvc_templates(chart_default)
    served["spec"]["predictor"]["model"]["storageUri"] = ""
    served["spec"]["predictor"]["model"]["env"] = default_template["spec"]["predictor"]["model"]["env"]
    assert served == default_template


# ------------------------------------------------------------------ contracts with the other areas


def container(obj, name=None):
    kind = obj["kind"]
    if kind == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "ClusterServingRuntime":
        spec = obj["spec"]
    else:
        spec = obj["spec"]["template"]["spec"]
    containers = spec["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def test_serving_runtime_runs_mlstack_serve_on_the_mounted_model(chart_default):
    runtime = by_kind(chart_default, "ClusterServingRuntime")[0]
    c = container(runtime)
    assert c["image"].split("/")[-1].startswith("mlstack:")
    assert c["args"] == ["serve", "--model", "/mnt/models", "--name", "{{.Name}}", "--port", "8080"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert set(runtime["spec"]["protocolVersions"]) == {"v1", "v2"}
    formats = [f["name"] for f in runtime["spec"]["supportedModelFormats"]]
    assert formats == ["mlstack-sklearn"]
    assert env_of(c)["MLSTACK_SERVING__HOST"]["value"] == "0.0.0.0"


def test_inference_service_contract(chart_default):
    runtime = by_kind(chart_default, "ClusterServingRuntime")[0]
    sink_service = named(chart_default, "Service", "mlstack-sink")
    for isvc in by_kind(chart_default, "InferenceService"):
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
        predictor = isvc["spec"]["predictor"]
        assert predictor["minReplicas"] >= 2
        assert "canaryTrafficPercent" not in predictor, "no canary configured, so no split"
        model = predictor["model"]
        assert model["modelFormat"]["name"] == runtime["spec"]["supportedModelFormats"][0]["name"]
        assert model["runtime"] == runtime["metadata"]["name"]
        assert model["storageUri"].startswith("s3://")
        assert env_of(model)["MLSTACK_MODEL_VERSION"]["value"] == "1"
        assert isvc["metadata"]["annotations"]["serving.mlstack.io/registered-model"] == "loan-default"
        # champion/challenger annotations appear only with a canary (kubectl model writes them later)
        assert "serving.mlstack.io/champion-version" not in isvc["metadata"]["annotations"]
        # the logger goes to the sink Service, on the port that Service exposes
        assert predictor["logger"]["mode"] == "all"
        port = sink_service["spec"]["ports"][0]["port"]
        assert predictor["logger"]["url"] == f"http://mlstack-sink.mlstack.svc.cluster.local:{port}/"
        # the service account exists and carries the annotated S3 secret
        account = named(chart_default, "ServiceAccount", predictor["serviceAccountName"])
        assert {"name": "mlstack-s3"} in account["secrets"]


def test_canary_renders_only_when_configured(default_values):
    models = copy.deepcopy(default_values["serving"]["models"])
    models[0]["canary"] = {
        "storageUri": "s3://mlstack/models/loan-default/2",
        "modelVersion": "2",
        "trafficPercent": 10,
    }
    objects = render_objects({"serving": {"models": models}})
    (isvc,) = by_kind(objects, "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    # the spec names the challenger; Knative keeps the champion's revision for the other 90%
    assert predictor["model"]["storageUri"] == "s3://mlstack/models/loan-default/2"
    assert env_of(predictor["model"])["MLSTACK_MODEL_VERSION"]["value"] == "2"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.mlstack.io/champion-version"] == "1"
    assert annotations["serving.mlstack.io/champion-storage-uri"] == "s3://mlstack/models/loan-default/1"
    assert annotations["serving.mlstack.io/challenger-version"] == "2"
    assert not validate_kserve(isvc)
    # the canary state machine (mlstack/core/rollout.py) reads the rendered object as a canary in flight
    from mlstack.core.rollout import state_of

    state = state_of(isvc)
    assert (state.phase, state.champion_version, state.challenger_version, state.percent) == (
        "canary",
        "1",
        "2",
        10,
    )


def test_kubectl_model_moves_on_the_rendered_service_stay_valid(chart_default):
    """start, promote and rollback patches from mlstack/core/rollout.py applied to the chart's object validate."""
    from mlstack.core.rollout import promote, rollback, start

    (isvc,) = by_kind(chart_default, "InferenceService")
    started = start(isvc, {"champion": "1"}, "2", "s3://mlstack/models/loan-default/2", 10).result(isvc)
    assert started["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert not validate_kserve(started)
    # promote/rollback need KServe's status; give the started object the status KServe would write
    started["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestCreatedRevision": "loan-default-predictor-00002",
                "latestReadyRevision": "loan-default-predictor-00002",
                "latestRolledoutRevision": "loan-default-predictor-00001",
                "traffic": [
                    {
                        "revisionName": "loan-default-predictor-00002",
                        "percent": 10,
                        "latestRevision": True,
                        "tag": "latest",
                    },
                    {
                        "revisionName": "loan-default-predictor-00001",
                        "percent": 90,
                        "latestRevision": False,
                        "tag": "prev",
                    },
                ],
            }
        },
    }
    aliases = {"champion": "1", "challenger": "2"}
    for move in (promote(started, aliases), rollback(started, aliases, "e2e")):
        # what we send is metadata and spec; status is KServe's to write
        after = {key: value for key, value in move.result(started).items() if key != "status"}
        errors = validate_kserve(after)
        assert not errors, (move.kind, errors)


def test_one_inference_service_drift_job_and_pdb_per_model(default_values):
    models = copy.deepcopy(default_values["serving"]["models"])
    models.append(
        {**models[0], "name": "churn", "storageUri": "s3://mlstack/models/churn/3", "modelVersion": "3"}
    )
    objects = render_objects({"serving": {"models": models}, "canaryAnalysis": {"enabled": True}})
    assert sorted(o["metadata"]["name"] for o in by_kind(objects, "InferenceService")) == [
        "churn",
        "loan-default",
    ]
    drift = sorted(
        o["metadata"]["name"] for o in by_kind(objects, "CronJob") if "drift" in o["metadata"]["name"]
    )
    assert drift == ["mlstack-drift-churn", "mlstack-drift-loan-default"]
    pdbs = {
        o["spec"]["selector"]["matchLabels"].get("serving.kserve.io/inferenceservice")
        for o in by_kind(objects, "PodDisruptionBudget")
    }
    assert {"churn", "loan-default"} <= pdbs
    errors = [err for obj in objects for err in validate_object(obj)]
    assert not errors, "\n".join(errors)


def test_sink_contract(chart_default):
    sink = named(chart_default, "StatefulSet", "mlstack-sink")
    c = container(sink)
    # the write-ahead log lives on a per-replica volume, not in the pod
    assert env_of(c)["MLSTACK_SINK__WAL_DIR"]["value"] == "/wal"
    assert {"name": "wal", "mountPath": "/wal"} in c["volumeMounts"]
    assert sink["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "wal"
    assert c["args"] == ["sink", "--store", "s3://mlstack/payloads", "--port", "8090"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert env_of(c)["MLSTACK_SINK__HOST"]["value"] == "0.0.0.0"
    monitor = named(chart_default, "ServiceMonitor", "mlstack-sink")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_both_halves_of_a_prediction_reach_the_same_sink_replica(chart_default):
    # the sink pairs a request with its response in memory; with more than one replica the Service
    # must send every event from one predictor pod to one sink pod
    sink = named(chart_default, "StatefulSet", "mlstack-sink")
    assert sink["spec"]["replicas"] > 1
    service = named(chart_default, "Service", "mlstack-sink")
    assert service["spec"]["sessionAffinity"] == "ClientIP"


def test_drift_cronjob_contract(chart_default):
    job = named(chart_default, "CronJob", "mlstack-drift-loan-default")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["schedule"] == "*/15 * * * *"
    job_spec = job["spec"]["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] == 2 and job_spec["activeDeadlineSeconds"] == 900
    c = container(job)
    assert c["image"].split("/")[-1].startswith("mlstack:")
    args = c["args"]
    assert args[:5] == ["drift", "--model", "loan-default", "--window", "1h"]
    flags = dict(zip(args[5::2], args[6::2], strict=True))
    assert flags["--store"] == "s3://mlstack/payloads"
    assert flags["--workspace"] == "/workspace"
    assert flags["--pushgateway"] == "http://mlstack-pushgateway.mlstack.svc:9091"


def test_evidently_ui_reads_the_workspace_the_drift_job_writes(chart_default):
    ui = named(chart_default, "Deployment", "mlstack-evidently")
    c = container(ui)
    assert c["command"] == ["evidently"]
    assert c["args"] == ["ui", "--workspace", "/workspace", "--host", "0.0.0.0", "--port", "8000"]
    drift = named(chart_default, "CronJob", "mlstack-drift-loan-default")
    drift_pod = drift["spec"]["jobTemplate"]["spec"]["template"]["spec"]

    def claim(pod_spec, mount_path):
        mounts = {
            m["name"]: m["mountPath"] for c in pod_spec["containers"] for m in c.get("volumeMounts", [])
        }
        volume = next(v for v in pod_spec["volumes"] if mounts.get(v["name"]) == mount_path)
        return volume["persistentVolumeClaim"]["claimName"]

    assert claim(ui["spec"]["template"]["spec"], "/workspace") == claim(drift_pod, "/workspace")
    named(chart_default, "PersistentVolumeClaim", claim(drift_pod, "/workspace"))


def test_mlflow_contract_auth_on_and_no_literal_credentials(chart_default):
    c = container(named(chart_default, "Deployment", "mlstack-mlflow"), "mlflow")
    assert c["command"] == ["mlflow"]
    args = c["args"]
    assert args[0] == "server"
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    assert flags["--app-name"] == "basic-auth"
    assert flags["--host"] == "0.0.0.0" and flags["--port"] == "5000"
    assert flags["--artifacts-destination"].startswith("s3://")
    # the password enters the URI only through Kubernetes' $(VAR) expansion of a Secret-backed env var
    assert flags["--backend-store-uri"].startswith(
        "postgresql://$(PGUSER):$(PGPASSWORD)@mlstack-postgres.mlstack.svc:5432/"
    )
    env = env_of(c)
    for name in ("PGUSER", "PGPASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    named(chart_default, "StatefulSet", "mlstack-postgres")


def test_no_credential_is_a_literal(chart_objects):
    suspicious = ("PASSWORD", "SECRET", "ACCESS_KEY", "TOKEN")
    for obj in chart_objects:
        assert obj["kind"] != "Secret", "the chart never holds credentials; Secrets are created outside it"
        for pod in _all_containers(obj):
            for env in pod.get("env", []):
                if any(word in env["name"] for word in suspicious):
                    assert "value" not in env, (
                        f"{obj['kind']}/{obj['metadata']['name']}: {env['name']} is a literal"
                    )


def _all_containers(obj):
    from tests.fixtures.cluster import containers_of, pod_specs

    for _, spec in pod_specs(obj):
        yield from containers_of(spec)
    if obj["kind"] == "ClusterServingRuntime":
        yield from obj["spec"]["containers"]
    if obj["kind"] == "InferenceService":
        yield obj["spec"]["predictor"]["model"]


def test_canary_analysis_is_optional_and_least_privileged(chart_default, chart_kind):
    assert not [o for o in chart_default if "canary-analysis" in o["metadata"]["name"]]
    job = named(chart_kind, "CronJob", "mlstack-canary-analysis-loan-default")
    c = container(job)
    assert c["command"] == ["kubectl-model"]
    # report only on kind (the e2e moves the canary itself); --apply wherever canaryAnalysis.apply is on
    assert c["args"] == ["analyze", "loan-default", "-n", "mlstack"]
    applying = render_objects(
        deep_merge(values_file("values-kind.yaml"), {"canaryAnalysis": {"apply": True}})
    )
    assert container(named(applying, "CronJob", job["metadata"]["name"]))["args"][-1] == "--apply"
    role = named(chart_kind, "Role", "mlstack-canary-analysis")
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["get", "patch"]}
    ]
    binding = named(chart_kind, "RoleBinding", "mlstack-canary-analysis")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "mlstack"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_every_service_selects_a_workload(chart_objects):
    pods = [_pod_labels(o) for o in chart_objects if _pod_labels(o)]
    for service in by_kind(chart_objects, "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pods), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            if isinstance(port["targetPort"], str):
                owners = [
                    o for o in chart_objects if _pod_labels(o) and selector.items() <= _pod_labels(o).items()
                ]
                names = {
                    p.get("name") for o in owners for c in _all_containers(o) for p in c.get("ports", [])
                }
                assert port["targetPort"] in names, (
                    f"{service['metadata']['name']}: no container port {port['targetPort']}"
                )


def _pod_labels(obj):
    if obj["kind"] in ("Deployment", "StatefulSet"):
        return obj["spec"]["template"]["metadata"]["labels"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return None


def test_workload_selectors_match_their_pod_labels(chart_objects):
    for obj in chart_objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= _pod_labels(obj).items(), obj["metadata"]["name"]


def test_images_follow_the_registry_and_tag_values(chart_kind):
    runtime = by_kind(chart_kind, "ClusterServingRuntime")[0]
    assert container(runtime)["image"] == "localhost:5001/mlstack:dev"
    postgres = named(chart_kind, "StatefulSet", "mlstack-postgres")
    # images that name their own registry are not re-prefixed
    assert container(postgres)["image"].startswith("docker.io/library/postgres:17-bookworm@sha256:")


@pytest.mark.parametrize(
    "toggle", ["mlflow", "drift", "evidently", "pushgateway", "metrics", "networkPolicy"]
)
def test_each_part_can_be_switched_off(toggle, default_values):
    values = {toggle: {"enabled": False}}
    if toggle == "pushgateway":
        values[toggle]["externalUrl"] = "http://pushgateway.monitoring.svc:9091"
    objects = render_objects(values)
    errors = [err for obj in objects for err in validate_object(obj)]
    assert not errors, "\n".join(errors)
    names = {o["metadata"]["name"] for o in objects}
    gone = {
        "mlflow": "mlstack-mlflow",
        "drift": "mlstack-drift-loan-default",
        "evidently": "mlstack-evidently",
        "pushgateway": "mlstack-pushgateway",
        "metrics": "mlstack-rules",
        "networkPolicy": "mlstack-default-deny",
    }[toggle]
    assert gone not in names


def test_pushgateway_off_without_an_external_url_fails_with_a_message():
    with pytest.raises(HelmFailed, match="pushgateway.externalUrl is required"):
        render_objects({"pushgateway": {"enabled": False}})


def test_merge_helper_matches_helm(default_values, kind_values, tmp_path):
    """Tests that reason about merged values use the same merge Helm does (helm prints its .Values)."""
    chart = tmp_path / "mlstack"
    shutil.copytree(CHART, chart, symlinks=False)
    (chart / "templates" / "values-dump.yaml").write_text("{{ toJson .Values }}\n")
    out = helm(
        "template",
        "mlstack",
        str(chart),
        "-f",
        str(CHART / "values-kind.yaml"),
        "--show-only",
        "templates/values-dump.yaml",
    )
    merged = json.loads(out.split("\n", 2)[2])
    assert merged == deep_merge(default_values, kind_values)


def test_every_mlstack_setting_the_chart_sets_exists_and_parses(chart_kind, monkeypatch):
    """pydantic-settings ignores unknown MLSTACK_* variables, so a typo would silently do nothing."""
    from mlstack.core.settings import load_settings

    for obj in chart_kind:
        for c in _all_containers(obj):
            # MLSTACK_MODEL_VERSION is not a setting but `mlstack serve --model-version`'s envvar
            literal = {
                e["name"]: e["value"]
                for e in c.get("env", [])
                if e["name"].startswith("MLSTACK_") and "value" in e and e["name"] != "MLSTACK_MODEL_VERSION"
            }
            if not literal:
                continue
            for name, value in literal.items():
                monkeypatch.setenv(name, value)
            settings = load_settings()
            for name, value in literal.items():
                target = settings
                for part in name.removeprefix("MLSTACK_").lower().split("__"):
                    assert hasattr(target, part), (
                        f"{obj['kind']}/{obj['metadata']['name']}: {name} is not a setting"
                    )
                    target = getattr(target, part)
                parsed = str(target) if not isinstance(target, float) else target
                if isinstance(target, bool):  # YAML's true/false, read back as a bool
                    parsed = str(target).lower()
                expected = value if not isinstance(target, float) else float(value)
                assert parsed == expected or str(target).endswith(value.lstrip("./")), (name, target, value)
            for name in literal:
                monkeypatch.delenv(name)
