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
    control_plane.helm("install", RELEASE, str(CHART), "-n", namespace, "--no-hooks")
    control_plane.helm("upgrade", RELEASE, str(CHART), "-n", namespace, "--no-hooks", *VALUES["kind"])
    history = json.loads(control_plane.helm("history", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "deployed"]
    upgraded = manifest_objects(control_plane, namespace)
    assert any(o["kind"] == "Role" for o in upgraded)  # canary analysis came with the kind values
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
    assert all("evidently" in name for name in kept)  # the workspace volume is kept on purpose
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
