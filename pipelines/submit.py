"""Compile a pipeline and submit it to a Kubeflow Pipelines server: a version, then a run or a recurring run."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.core.errors import MlstackError, UsageError

log = logging.getLogger(__name__)


def compile_pipeline(pipeline_func: Callable[..., Any], out: Path) -> Path:
    """Write the pipeline's IR YAML to ``out``."""
    from kfp import compiler

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func, str(out))
    return out


def kfp_cron(schedule: str) -> str:
    """KFP wants 6-field cron (seconds first); accept the usual 5 fields too."""
    fields = schedule.split()
    if len(fields) == 5:
        return "0 " + schedule
    if len(fields) == 6:
        return schedule
    raise UsageError(f"--schedule {schedule!r} is not a cron expression: give 5 fields, e.g. '0 2 * * *'")


def submit(
    pipeline_func: Callable[..., Any],
    pipeline_name: str,
    host: str,
    arguments: dict[str, Any],
    experiment: str,
    schedule: str | None = None,
    client_factory: Callable[..., Any] | None = None,
) -> dict[str, str]:
    """Upload a new pipeline version (creating the pipeline if needed) and start a run or a recurring run."""
    import kfp

    cron = kfp_cron(schedule) if schedule else None
    factory = client_factory or kfp.Client
    try:
        client = factory(host=host)
        version_name = datetime.now(UTC).strftime("v%Y%m%d-%H%M%S")
        with tempfile.TemporaryDirectory() as tmp:
            package = compile_pipeline(pipeline_func, Path(tmp) / f"{pipeline_name}.yaml")
            pipeline_id = client.get_pipeline_id(pipeline_name)
            if pipeline_id is None:
                pipeline = client.upload_pipeline(str(package), pipeline_name=pipeline_name)
                pipeline_id = pipeline.pipeline_id
            version = client.upload_pipeline_version(
                str(package), pipeline_version_name=version_name, pipeline_id=pipeline_id
            )
        experiment_id = client.create_experiment(name=experiment).experiment_id
        job_name = f"{pipeline_name}-{version_name}"
        if cron:
            job = client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=job_name,
                cron_expression=cron,
                pipeline_id=pipeline_id,
                version_id=version.pipeline_version_id,
                params=arguments,
                max_concurrency=1,
            )
            return {
                "pipeline_id": pipeline_id,
                "version_id": version.pipeline_version_id,
                "recurring_run_id": job.recurring_run_id,
                "schedule": cron,
            }
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=job_name,
            pipeline_id=pipeline_id,
            version_id=version.pipeline_version_id,
            params=arguments,
        )
        return {
            "pipeline_id": pipeline_id,
            "version_id": version.pipeline_version_id,
            "run_id": run.run_id,
            "url": f"{host.rstrip('/')}/#/runs/details/{run.run_id}",
        }
    except MlstackError:
        raise
    except Exception as exc:  # connection refused, auth, API errors: one line, what to check
        raise MlstackError(
            f"could not submit to the KFP server at {host}: {exc.__class__.__name__}: {exc}"
        ) from exc
