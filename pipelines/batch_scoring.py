"""The batch scoring pipeline: resolve a registered model version, then score a table with it.

Two steps: ``resolve-model`` pins ``NAME@ALIAS`` to one version (shown in the UI, and the alias may
move during the run without effect), ``score-batch`` validates, scores in chunks and writes the
predictions and rejects, logging ``Metrics`` and a ``Markdown`` summary. Caching is off: a nightly
run reads the same URI with new content.

Entry points: ``run_local`` (kfp.local, no cluster), ``compile_pipeline`` and ``submit`` (upload
to a KFP server and create a recurring run).
"""

import contextlib
import json
import logging
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from kfp import compiler, dsl

from components.batch_score import resolve_model, score_batch
from mlstack.core.errors import MlstackError, UsageError
from mlstack.core.settings import Settings

log = logging.getLogger(__name__)

PIPELINE_NAME = "mlstack-batch-scoring"


@dsl.pipeline(
    name=PIPELINE_NAME, description="Score a table with a registered model: rejects, lineage, summary."
)
def batch_scoring(
    model: str = "fraud@champion",
    input_uri: str = "",
    output_uri: str = "",
    rejects_uri: str = "",
    chunk_rows: int = 0,
    tracking_uri: str = "",
) -> str:
    """``output_uri``/``rejects_uri`` may hold ``{date}`` and ``{run_id}``; empty rejects_uri = next to the output."""
    resolved = resolve_model(model=model, tracking_uri=tracking_uri)
    resolved.set_caching_options(False).set_display_name("resolve-model")
    scored = score_batch(
        model_name=resolved.outputs["name"],
        model_version=resolved.outputs["version"],
        input_uri=input_uri,
        output_uri=output_uri,
        rejects_uri=rejects_uri,
        chunk_rows=chunk_rows,
        tracking_uri=tracking_uri,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    scored.set_caching_options(False).set_display_name("score-batch")
    return scored.outputs["Output"]


def compile_pipeline(path: str | Path) -> Path:
    """Write the pipeline's IR YAML (a build output) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(batch_scoring, str(path))
    return path


def run_local(settings: Settings, **arguments) -> dict:
    """Run the pipeline with kfp.local subprocesses in this Python environment; return the score summary.

    Component logs are sent to stderr, so stdout stays free for ``--json``.
    """
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(settings.resolved_home / "kfp"),
    )
    arguments.setdefault("tracking_uri", settings.resolved_tracking_uri)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            task = batch_scoring(**arguments)
    except RuntimeError as exc:  # kfp.local: a task failed; its own log (above) says why
        raise MlstackError(f"batch scoring pipeline failed: {exc}; see the component log above") from exc
    return json.loads(task.output)


_CRON_FIELD = re.compile(
    r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$"
)


def kfp_cron(expression: str) -> str:
    """A 5-field cron (``0 2 * * *``) -> KFP's 6-field form with seconds first; a 6-field one passes as is."""
    fields = expression.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise UsageError(
            f"schedule {expression!r} is not a cron expression: use 5 fields, e.g. '0 2 * * *' (02:00 daily)"
        )
    return " ".join(["0", *fields] if len(fields) == 5 else fields)


def submit(
    host: str,
    schedule: str,
    arguments: dict,
    experiment: str,
    job_name: str | None = None,
    client=None,
) -> dict:
    """Upload the pipeline (or a new version of it) to KFP and create a recurring run; return their ids."""
    import kfp

    cron = kfp_cron(schedule)
    client = client or kfp.Client(host=host)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory() as tmp:
        package = str(compile_pipeline(Path(tmp) / "batch_scoring.yaml"))
        pipeline_id = client.get_pipeline_id(PIPELINE_NAME)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(package, pipeline_name=PIPELINE_NAME).pipeline_id
        version = client.upload_pipeline_version(
            package, pipeline_version_name=f"{PIPELINE_NAME}-{stamp}", pipeline_id=pipeline_id
        )
    experiment_id = client.create_experiment(experiment).experiment_id
    run = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=job_name or f"batch-{arguments.get('model', 'model').replace('@', '-').replace('/', '-')}",
        cron_expression=cron,
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
        params=arguments,
        enable_caching=False,
    )
    return {
        "pipeline_id": pipeline_id,
        "pipeline_version_id": version.pipeline_version_id,
        "experiment_id": experiment_id,
        "recurring_run_id": run.recurring_run_id,
        "cron": cron,
    }
