"""The thin KFP components of the batch scoring pipeline, over ``components/batch_score.py``.

Apart from the step module for the reason ``components/training_ops.py`` gives: inside a running task
``kfp.dsl`` has no ``component`` decorator, so the module a body imports must not define components.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from mlstack.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def resolve_model_op(model: str, tracking_uri: str) -> NamedTuple(  # type: ignore[valid-type]  # KFP's form
    "ResolvedModel", [("name", str), ("version", str)]
):
    """Pin NAME[@ALIAS|/VERSION] to one registered version, so scoring uses exactly that version."""
    import logging
    from collections import namedtuple

    from mlstack.components.batch_score import resolve_spec
    from mlstack.components.errors import fail_step
    from mlstack.core.errors import MlstackError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        name, version = resolve_spec(model, tracking_uri)
    except MlstackError as exc:
        fail_step(str(exc))
    ResolvedModel = namedtuple("ResolvedModel", ["name", "version"])
    return ResolvedModel(name, version)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def score_batch_op(
    model_name: str,
    model_version: str,
    input_uri: str,
    output_uri: str,
    rejects_uri: str,
    chunk_rows: int,
    tracking_uri: str,
    run_id: str,
    metrics: Output[Metrics],
    summary: Output[Markdown],
) -> str:
    """Validate and score the input in chunks; write predictions and rejects; log the summary for the UI."""
    import json
    import logging

    from mlstack.components.batch_score import run_scoring
    from mlstack.components.errors import fail_step
    from mlstack.core.errors import MlstackError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_scoring(
            model_name, model_version, input_uri, output_uri, rejects_uri, chunk_rows, tracking_uri, run_id
        )
    except MlstackError as exc:
        fail_step(str(exc))
    for key in ("rows", "scored", "rejected", "positives"):
        metrics.log_metric(key, getattr(result, key))
    metrics.log_metric("reject_rate", result.rejected / max(result.rows, 1))
    metrics.log_metric("rows_per_second", round(result.rows_per_second, 1))
    with open(summary.path, "w") as handle:
        handle.write(result.markdown())
    return json.dumps(result.to_dict())
