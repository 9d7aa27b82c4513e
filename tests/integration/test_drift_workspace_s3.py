"""An s3:// Evidently workspace keeps one project per model across runs and the Evidently layout."""

from __future__ import annotations

import json

from evidently.ui.workspace import Workspace

from mlstack.core.generator import generate, loan_contract
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift import workspace
from mlstack.monitoring.drift.job import evaluate


def test_s3_workspace_accumulates_runs_in_one_project(s3_bucket, tmp_path):
    contract = loan_contract()
    reference = generate(2000, seed=1)
    ids = []
    for run in range(2):
        outcome = evaluate("loan", "3", reference, generate(1500, seed=20 + run), contract, DriftConfig())
        ids.append(workspace.add_snapshot("s3://drift/ws", "loan", outcome.snapshot))
        workspace.save_html("s3://drift/ws", "loan", "3", f"run{run}", outcome.snapshot)
    assert ids[0]["project"] == ids[1]["project"]
    keys = {o["Key"] for o in s3_bucket.list_objects_v2(Bucket="drift", Prefix="ws/")["Contents"]}
    project = ids[0]["project"]
    assert f"ws/{project}/metadata.json" in keys
    assert {f"ws/{project}/snapshots/{i['snapshot']}.json" for i in ids} <= keys
    assert {"ws/reports/loan/3/drift-run0.html", "ws/reports/loan/3/drift-run1.html"} <= keys
    # a local copy of the bucket is a workspace Evidently itself reads
    local = tmp_path / "copy"
    for key in keys:
        target = local / key.removeprefix("ws/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3_bucket.get_object(Bucket="drift", Key=key)["Body"].read())
    copy = Workspace(str(local))
    assert [p.name for p in copy.list_projects()] == ["loan"]
    assert len(copy.list_runs(project)) == 2
    assert json.loads((local / project / "metadata.json").read_text())["name"] == "loan"
