"""The batch scoring pipeline: resolve a registered model version, then score a table with it.

Two steps: ``resolve-model`` pins ``NAME@ALIAS`` to one version (shown in the UI; the alias may move
during the run without effect), ``score-batch`` validates, scores in chunks and writes the
predictions and rejects, logging ``Metrics`` and a ``Markdown`` summary. Caching is off: a nightly
run reads the same URI with new content.

Entry points: ``run_batch_locally`` (kfp.local, no cluster) and ``submit_batch`` (upload to a KFP
server and create a recurring run), over the shared ``mlstack.pipelines.local`` and ``mlstack.pipelines.submit``.
"""

import json
from typing import Any

from kfp import dsl

from mlstack.components.batch_ops import resolve_model_op, score_batch_op
from mlstack.core.settings import Settings
from mlstack.pipelines.cluster_env import ENV_CONFIG_MAP, MLFLOW_SECRET, S3_SECRET, with_cluster_env

PIPELINE_NAME = "mlstack-batch-scoring"


@dsl.pipeline(
    name=PIPELINE_NAME, description="Score a table with a registered model: rejects, lineage, summary."
)
def batch_scoring(
    model: str,
    input_uri: str,
    output_uri: str,
    rejects_uri: str = "",
    chunk_rows: int = 0,
    tracking_uri: str = "",
    s3_secret: str = S3_SECRET,
    mlflow_secret: str = MLFLOW_SECRET,
    env_config_map: str = ENV_CONFIG_MAP,
) -> str:
    """``output_uri``/``rejects_uri`` may hold ``{date}`` and ``{run_id}``; empty rejects_uri = next to the output.

    The last three name the credentials' Secrets and the ConfigMap (``pipelines/cluster_env.py``).
    """
    resolved = resolve_model_op(model=model, tracking_uri=tracking_uri)
    with_cluster_env(resolved, s3_secret, mlflow_secret, env_config_map)
    resolved.set_caching_options(False).set_display_name("resolve-model")
    scored = score_batch_op(
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
    with_cluster_env(scored, s3_secret, mlflow_secret, env_config_map)
    return scored.outputs["Output"]


def run_batch_locally(settings: Settings, arguments: dict[str, Any], show_progress: bool = True) -> dict:
    """Run the pipeline with kfp.local subprocesses here; return the scoring summary."""
    from mlstack.pipelines.local import run_local

    arguments = {"tracking_uri": settings.resolved_tracking_uri, **arguments}
    output = run_local(batch_scoring, arguments, settings.resolved_home, show_progress=show_progress)
    return json.loads(output)


def submit_batch(
    settings: Settings, host: str, arguments: dict[str, Any], schedule: str, client_factory=None
) -> dict:
    """Upload the pipeline (a new version of it) and create a recurring run on ``schedule`` (cron)."""
    from mlstack.pipelines.submit import submit

    return submit(
        batch_scoring,
        PIPELINE_NAME,
        host,
        arguments,
        experiment=settings.batch.kfp_experiment,
        schedule=schedule,
        client_factory=client_factory,
    )
