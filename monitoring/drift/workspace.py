"""Store drift snapshots in an Evidently workspace (one project per model) and HTML reports beside it.

``evidently ui --workspace DIR`` (or the chart's Evidently UI on the same bucket) shows the history.
Every workspace, a local directory as well as ``s3://``, is staged: the projects' metadata files
are copied into a temporary workspace, Evidently adds the run there with its own writer, and the
new files are copied back under the same layout. Opening the real workspace would make Evidently
parse every snapshot it holds (evidently@0.7.23 ui/service/storage/local/base.py
``LocalState.reload``): a drift job every 15 minutes would spend longer on that each run, forever.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pyarrow.fs as pafs
from evidently.sdk.models import ProjectModel
from evidently.ui.workspace import Workspace

from mlstack.core import storage

log = logging.getLogger(__name__)

PROJECT_FILE = "metadata.json"


def _project(workspace: Workspace, model: str):
    found = workspace.search_project(model)
    if found:
        return found[0]
    project = workspace.add_project(
        ProjectModel(name=model, description=f"Drift of model {model}, one snapshot per drift-job run")
    )
    log.info("created Evidently project %s for model %s", project.id, model)
    return project


def _add_local(path: str, model: str, snapshot) -> tuple[str, str]:
    Path(path).mkdir(parents=True, exist_ok=True)
    workspace = Workspace(path)
    project = _project(workspace, model)
    ref = workspace.add_run(project.id, snapshot, include_data=False)
    return str(project.id), str(ref.id)


def _stage_projects(uri: str, staging: Path) -> None:
    """Copy each project's metadata file (never its snapshots) from a workspace into ``staging``."""
    fs, root = storage.filesystem(uri)
    selector = pafs.FileSelector(root, allow_not_found=True, recursive=False)
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.Directory:
            continue
        name = info.path.rsplit("/", 1)[-1]
        meta = storage.join(uri, name, PROJECT_FILE)
        if storage.exists(meta):
            (staging / name).mkdir(parents=True, exist_ok=True)
            (staging / name / PROJECT_FILE).write_bytes(storage.read_bytes(meta))


def add_snapshot(workspace_uri: str, model: str, snapshot) -> dict:
    """Add ``snapshot`` to the model's project; returns {"project", "snapshot"} ids."""
    with tempfile.TemporaryDirectory(prefix="mlstack-workspace-") as tmp:
        staging = Path(tmp)
        _stage_projects(workspace_uri, staging)
        before = {p for p in staging.rglob("*") if p.is_file()}
        project_id, snapshot_id = _add_local(tmp, model, snapshot)
        for file in staging.rglob("*"):
            if file.is_file() and (file not in before or file.name == PROJECT_FILE):
                storage.write_bytes(
                    storage.join(workspace_uri, *file.relative_to(staging).parts), file.read_bytes()
                )
    return {"project": project_id, "snapshot": snapshot_id}


def save_html(workspace_uri: str, model: str, version: str, stamp: str, snapshot) -> str:
    """Write the standalone HTML report under ``<workspace>/reports/<model>/<version>/``; returns its URI."""
    uri = storage.join(workspace_uri, "reports", model, str(version), f"drift-{stamp}.html")
    storage.write_bytes(uri, snapshot.get_html_str(as_iframe=False).encode())
    return uri
