"""`helm upgrade` and `helm uninstall` of helm/mlstack against the real API server.

In its own module: the chart's ClusterServingRuntime is cluster-scoped, so only one release may own
it at a time, and test_chart_install.py's releases are gone once that module ends.
"""

from __future__ import annotations

import json

from tests.integration.test_chart_install import (
    CHART,
    RELEASE,
    VALUES,
    manifest_objects,
    restricted_namespace,
)


def test_upgrade_then_uninstall_leave_nothing_behind(platform, control_plane):
    namespace = restricted_namespace(control_plane, "chart-lifecycle")
    # an upgrade a user makes: same values, one feature switched on (volume sizes and StatefulSet
    # specs are immutable, so switching default -> kind values is a reinstall, not an upgrade)
    kind_without_analysis = [*VALUES["kind"], "--set", "canaryAnalysis.enabled=false"]
    control_plane.helm("install", RELEASE, str(CHART), "-n", namespace, "--no-hooks", *kind_without_analysis)
    assert not any(
        o["kind"] == "Role" and "canary" in o["metadata"]["name"]
        for o in manifest_objects(control_plane, namespace)
    )
    control_plane.helm("upgrade", RELEASE, str(CHART), "-n", namespace, "--no-hooks", *VALUES["kind"])
    history = json.loads(control_plane.helm("history", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "deployed"]
    upgraded = manifest_objects(control_plane, namespace)
    assert any(o["kind"] == "Role" and "canary" in o["metadata"]["name"] for o in upgraded)
    control_plane.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m")
    left = control_plane.kubectl(
        "get",
        "deployments,statefulsets,cronjobs,services,configmaps,serviceaccounts,roles,rolebindings,"
        "networkpolicies,inferenceservices,poddisruptionbudgets",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/instance=mlstack",
        "-o",
        "name",
    ).stdout.split()
    assert left == []
    kept = control_plane.kubectl("get", "pvc", "-n", namespace, "-o", "name").stdout.split()
    # kept on purpose (docs/cluster.md, `make undeploy`): the Evidently workspace (helm.sh/resource-policy:
    # keep), and PostgreSQL's data and the sink's WAL, which Kubernetes keeps after a StatefulSet
    # goes (its volumeClaimTemplates' claims)
    assert kept and all(any(part in name for part in ("evidently", "postgres", "sink")) for name in kept), (
        kept
    )
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
