"""Policy over the rendered chart that no API server enforces: limits, probes, RBAC shape, NetworkPolicies.

Pod Security "restricted" for our Deployments, StatefulSets, CronJobs and Jobs is enforced by the real
API server (tests/integration/test_chart_install.py installs the chart into a restricted namespace and
checks every pod the controllers make; test_server_refuses.py shows a privileged or unhardened pod
refused). What stays here for Pod Security is the predictor pod: KServe's controller builds it from the
InferenceService and the ClusterServingRuntime, and that controller does not run in the tests.
"""

from __future__ import annotations

import re

from tests.fixtures.cluster import by_kind, containers_of, pod_specs

LONG_RUNNING = ("Deployment", "StatefulSet")


def all_pods(objects):
    """(label, pod-level securityContext, containers) for every pod the chart makes, predictors included."""
    for obj in objects:
        for label, spec in pod_specs(obj):
            yield label, spec.get("securityContext") or {}, containers_of(spec)
        if obj["kind"] == "InferenceService":
            predictor = obj["spec"]["predictor"]
            yield (
                f"InferenceService/{obj['metadata']['name']}",
                predictor.get("securityContext") or {},
                [predictor["model"]],
            )
        if obj["kind"] == "ClusterServingRuntime":
            # the runtime's containers are merged into every predictor pod
            yield (
                f"ClusterServingRuntime/{obj['metadata']['name']}",
                {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                obj["spec"]["containers"],
            )


def restricted_violations(label, pod_context, container):
    """Pod Security Standard "restricted" checks for one container (pod-level settings inherited)."""
    ctx = container.get("securityContext") or {}
    where = f"{label}/{container.get('name', 'model')}"
    problems = []
    if not (ctx.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
        problems.append(f"{where}: runAsNonRoot is not set")
    if ctx.get("runAsUser", pod_context.get("runAsUser")) == 0:
        problems.append(f"{where}: runs as uid 0")
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if ctx.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: root filesystem is writable")
    if (ctx.get("capabilities") or {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: capabilities are not all dropped")
    if (ctx.get("capabilities") or {}).get("add"):
        problems.append(f"{where}: adds capabilities")
    if ctx.get("privileged"):
        problems.append(f"{where}: privileged")
    seccomp = (ctx.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is {seccomp}, not RuntimeDefault")
    return problems


def predictor_containers(objects):
    """(label, pod-level securityContext, container) for what KServe will put in predictor pods."""
    for label, pod_context, containers in all_pods(objects):
        if label.startswith(("InferenceService/", "ClusterServingRuntime/")):
            yield from ((label, pod_context, c) for c in containers)


def test_predictor_pods_will_be_restricted(chart_objects):
    """KServe merges these into the predictor pod; no server judges them until KServe runs."""
    checked = list(predictor_containers(chart_objects))
    assert checked
    problems = [p for label, ctx, c in checked for p in restricted_violations(label, ctx, c)]
    assert not problems, "\n".join(problems)


def test_the_predictor_check_catches_a_violation(chart_default):
    """The restricted check fails on a container that escalates, so it is not vacuous."""
    label, pod_context, container = next(predictor_containers(chart_default))
    bad = {
        **container,
        "securityContext": {**(container.get("securityContext") or {}), "allowPrivilegeEscalation": True},
    }
    assert restricted_violations(label, pod_context, bad)
    assert len(restricted_violations(label, {}, {**container, "securityContext": {}})) >= 4


def test_every_container_has_requests_and_limits(chart_objects):
    for label, _, containers in all_pods(chart_objects):
        for c in containers:
            resources = c.get("resources") or {}
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(section) or {}), (
                    f"{label}/{c.get('name')}: no {section}"
                )


def test_every_long_running_container_has_probes(chart_objects):
    for obj in chart_objects:
        if obj["kind"] not in LONG_RUNNING:
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            assert c.get("readinessProbe") and c.get("livenessProbe"), (
                f"{obj['metadata']['name']}/{c['name']}"
            )
    for runtime in by_kind(chart_objects, "ClusterServingRuntime"):
        for c in runtime["spec"]["containers"]:
            assert c.get("readinessProbe") and c.get("livenessProbe"), runtime["metadata"]["name"]


def test_images_are_pinned(chart_objects):
    for label, _, containers in all_pods(chart_objects):
        for c in containers:
            if "image" not in c:  # InferenceService model containers take the runtime's image
                continue
            image = c["image"]
            assert not image.endswith(":latest") and re.search(
                r":[\w.-]+(@sha256:[0-9a-f]{64})?$|@sha256:", image
            ), f"{label}: image {image} is not pinned"


def test_jobs_are_bounded(chart_objects):
    for cron in by_kind(chart_objects, "CronJob"):
        job = cron["spec"]["jobTemplate"]["spec"]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid", cron["metadata"]["name"]
        assert job["activeDeadlineSeconds"] > 0 and job["backoffLimit"] >= 0, cron["metadata"]["name"]
    for job in by_kind(chart_objects, "Job"):
        assert job["spec"]["activeDeadlineSeconds"] > 0


def test_availability_predictors_and_sink_survive_a_disruption(chart_objects):
    pdbs = by_kind(chart_objects, "PodDisruptionBudget")
    for isvc in by_kind(chart_objects, "InferenceService"):
        name = isvc["metadata"]["name"]
        assert isvc["spec"]["predictor"]["minReplicas"] >= 2
        covering = [
            p
            for p in pdbs
            if p["spec"]["selector"]["matchLabels"].get("serving.kserve.io/inferenceservice") == name
        ]
        assert covering and covering[0]["spec"]["minAvailable"] < isvc["spec"]["predictor"]["minReplicas"], (
            f"{name}: a PDB that allows no eviction blocks node drains"
        )
    sink = next(o for o in by_kind(chart_objects, "StatefulSet") if o["metadata"]["name"].endswith("-sink"))
    assert sink["spec"]["replicas"] >= 2
    assert any(
        p["spec"]["selector"]["matchLabels"].items() <= sink["spec"]["template"]["metadata"]["labels"].items()
        for p in pdbs
    )


# ------------------------------------------------------------------ RBAC and service accounts


def test_no_wildcards_and_no_cluster_wide_rights(chart_objects):
    assert not by_kind(chart_objects, "ClusterRole") and not by_kind(chart_objects, "ClusterRoleBinding")
    for role in by_kind(chart_objects, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(field) or []), (
                    f"Role/{role['metadata']['name']}: wildcard in {field}"
                )
            forbidden = {"escalate", "bind", "impersonate", "create", "delete", "deletecollection"}
            if role["metadata"]["name"].endswith("-pipeline-deployer") and rule["resources"] == [
                "inferenceservices"
            ]:
                forbidden.discard("create")  # the first deploy creates the service; nothing deletes it
            if role["metadata"]["name"].endswith("-rollout-controller") and rule["resources"] in (
                ["leases"],
                ["events"],
            ):
                forbidden.discard("create")  # its Lease the first time, an Event per move
            assert not set(rule["verbs"]) & forbidden, f"Role/{role['metadata']['name']}: {rule}"


def test_one_service_account_per_workload_and_tokens_only_where_needed(chart_objects):
    accounts = {a["metadata"]["name"]: a for a in by_kind(chart_objects, "ServiceAccount")}
    bound = {s["name"] for b in by_kind(chart_objects, "RoleBinding") for s in b["subjects"]}
    users = {}
    for obj in chart_objects:
        for label, spec in pod_specs(obj):
            account = spec.get("serviceAccountName")
            if obj["kind"] == "Job":  # the bucket hook needs no identity at all
                assert account is None and spec["automountServiceAccountToken"] is False
                continue
            assert account in accounts, f"{label}: uses undeclared service account {account}"
            users.setdefault(account, set()).add(
                obj["metadata"]["name"].rsplit("-", 1)[0] if obj["kind"] == "CronJob" else label
            )
            token = spec.get(
                "automountServiceAccountToken", accounts[account].get("automountServiceAccountToken", True)
            )
            assert token == (account in bound), (
                f"{label}: API token mounted {token}, but RBAC-bound {account in bound}"
            )
    for account, workloads in users.items():
        assert len(workloads) == 1, f"{account} is shared by {workloads}"


# ------------------------------------------------------------------ NetworkPolicies


def _selects(policy, labels):
    selector = policy["spec"]["podSelector"]
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
    return True


def _pod_label_sets(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["metadata"]["labels"]
        elif obj["kind"] == "CronJob":
            yield (
                obj["metadata"]["name"],
                obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"],
            )
        elif obj["kind"] == "InferenceService" or obj["metadata"]["name"].endswith("-isvc-template"):
            # the labels KServe puts on predictor pods (the template: the service the deploy step creates)
            name = obj["metadata"]["name"].removesuffix("-isvc-template")
            yield name, {"serving.kserve.io/inferenceservice": name, "component": "predictor"}


def test_default_deny_in_our_namespace(chart_objects):
    policies = by_kind(chart_objects, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1, "exactly one default-deny (both directions) for the release namespace"


def test_every_pod_has_its_own_allow_policy(chart_objects):
    policies = [p for p in by_kind(chart_objects, "NetworkPolicy") if p["spec"]["podSelector"] != {}]
    for name, labels in _pod_label_sets(chart_objects):
        assert any(_selects(p, labels) for p in policies), (
            f"{name}: only default deny applies; it cannot work"
        )


def test_allow_rules_name_real_pods(chart_objects):
    """Every podSelector peer in an allow rule matches pods the chart creates (no dead rules)."""
    label_sets = [labels for _, labels in _pod_label_sets(chart_objects)]
    for policy in by_kind(chart_objects, "NetworkPolicy"):
        for rule in (policy["spec"].get("ingress") or []) + (policy["spec"].get("egress") or []):
            for peer in rule.get("from", []) + rule.get("to", []):
                selector = peer.get("podSelector")
                if not selector or "namespaceSelector" in peer:
                    continue
                fake = {"spec": {"podSelector": selector}}
                assert any(_selects(fake, labels) for labels in label_sets), (
                    f"NetworkPolicy/{policy['metadata']['name']}: peer {selector} selects nothing"
                )


def test_sink_accepts_only_predictors_and_prometheus(chart_default):
    policy = next(
        p for p in by_kind(chart_default, "NetworkPolicy") if p["metadata"]["name"] == "mlstack-sink"
    )
    (rule,) = policy["spec"]["ingress"]
    peers = rule["from"]
    assert {
        "podSelector": {
            "matchExpressions": [{"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}]
        }
    } in peers
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in peers
    assert len(peers) == 2


def test_postgres_is_reachable_only_from_mlflow(chart_default):
    policy = next(
        p for p in by_kind(chart_default, "NetworkPolicy") if p["metadata"]["name"] == "mlstack-postgres"
    )
    (rule,) = policy["spec"]["ingress"]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in rule["from"]] == [
        "mlflow"
    ]
    assert policy["spec"]["egress"] == []


def test_object_store_egress_follows_the_values(chart_default, chart_kind):
    def s3_rule(objects):
        policy = next(p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "mlstack-sink")
        to_mlflow, rule = policy["spec"]["egress"]  # the registry (contract lookups), then S3
        assert to_mlflow["ports"] == [{"protocol": "TCP", "port": 5000}]
        return rule

    external = s3_rule(chart_default)
    assert external == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    in_cluster = s3_rule(chart_kind)
    assert in_cluster["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
    ]
    assert in_cluster["ports"] == [{"protocol": "TCP", "port": 8333}]


def test_the_pipeline_runner_may_deploy_in_our_namespace_only(chart_kind):
    """KFP's pipeline-runner (kubeflow) gets get/create/patch on InferenceServices here, and nothing else."""
    (binding,) = [
        b for b in by_kind(chart_kind, "RoleBinding") if b["metadata"]["name"].endswith("-pipeline-deployer")
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
    ]
    role = next(r for r in by_kind(chart_kind, "Role") if r["metadata"]["name"] == binding["roleRef"]["name"])
    rules = {tuple(r["resources"]): r for r in role["rules"]}
    assert rules[("inferenceservices",)]["apiGroups"] == ["serving.kserve.io"]
    assert sorted(rules[("inferenceservices",)]["verbs"]) == ["create", "get", "patch"]
    assert rules[("configmaps",)]["verbs"] == ["get"]
    templates = {
        c["metadata"]["name"]
        for c in by_kind(chart_kind, "ConfigMap")
        if "isvc-template" in c["metadata"]["name"]
    }
    assert set(rules[("configmaps",)]["resourceNames"]) == templates and templates
