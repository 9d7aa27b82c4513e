"""Batch scoring: score a table with a registered model, chunk by chunk, with rejects and lineage.

``score_table`` is the plain function (tested directly); ``components/batch_ops.py`` holds the thin
KFP components over ``resolve_spec`` and ``run_scoring`` that ``pipelines/batch_scoring.py`` composes.

Output (Parquet): every input column, then ``row_number`` (0-based position in the input),
``prediction`` (0/1), ``probability`` (positive class), ``model_name``, ``model_version``,
``input_fingerprint`` (``mlstack.core.data.fingerprint`` of the input table, computed in streaming)
and ``run_id``. Numeric features read as text (CSV) are written as float64 (integer features as
int64), so the file is a drift job's ``--current`` window as is. Rejects (Parquet): the rejected
input rows as read, ``row_number`` and ``reject_reason``. Predictions come from
``LoadedModel.predict``, the engine the online predictor would choose for the same version (the
compiled artifact when it verifies, scikit-learn otherwise, logged with the reason).
"""

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from mlstack.adapters import mlflow as mlflow_adapter
from mlstack.components import batch_preflight as preflight
from mlstack.components.batch_checks import judge_chunk, reason_counts_of
from mlstack.components.batch_fingerprint import fingerprint_parquet
from mlstack.components.batch_io import (
    ParquetSink,
    commit_together,
    default_rejects_uri,
    expand_uri,
    is_csv,
    open_batches,
)
from mlstack.core.data import DataError, fingerprint_uri
from mlstack.core.model import LoadedModel
from mlstack.core.settings import Settings, load_settings

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = preflight.PREDICTION_COLUMNS
REJECT_COLUMNS = preflight.REJECT_COLUMNS


@dataclass
class BatchSummary:
    """What one scoring run did; ``to_dict`` is what ``mlstack batch run --json`` prints (plus more)."""

    model_name: str
    model_version: str
    input: str
    output: str
    rejects: str
    input_fingerprint: str
    run_id: str
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    positives: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    engine: str = "sklearn"  # the online predictor's choice: onnx when the version's artifact verifies
    engine_reason: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"rows_per_second": round(self.rows_per_second, 1)}

    def markdown(self) -> str:
        """The summary the Kubeflow UI shows."""
        reasons = "".join(f"| {rule} | {count} |\n" for rule, count in sorted(self.reasons.items()))
        return (
            f"# Batch scoring: {self.model_name} v{self.model_version}\n\n"
            "| | |\n|---|---|\n"
            f"| input | `{self.input}` |\n| input fingerprint | `{self.input_fingerprint}` |\n"
            f"| engine | {self.engine}: {self.engine_reason} |\n"
            f"| rows | {self.rows} |\n| scored | {self.scored} |\n| rejected | {self.rejected} |\n"
            f"| predicted positive | {self.positives} ({self.positives / max(self.scored, 1):.2%}) |\n"
            f"| predictions | `{self.output}` |\n| rejects | `{self.rejects}` |\n"
            f"| run id | `{self.run_id}` |\n| throughput | {self.rows_per_second:,.0f} rows/s |\n\n"
            + (f"## Rejected rows by rule\n\n| rule | rows |\n|---|---|\n{reasons}" if reasons else "")
        )


def _output_schema(input_schema: pa.Schema, model: LoadedModel) -> pa.Schema:
    fields = []
    for item in input_schema:
        if item.name in LINEAGE_COLUMNS:
            continue  # re-scoring an earlier output: its lineage columns are replaced, not duplicated
        if item.name in model.feature_names:
            feature = model.contract.feature(item.name)
            if not feature.is_categorical and not (
                pa.types.is_integer(item.type) or pa.types.is_floating(item.type)
            ):
                item = pa.field(item.name, pa.int64() if feature.type == "integer" else pa.float64())
        fields.append(item)
    fields += [
        pa.field("row_number", pa.int64()),
        pa.field("prediction", pa.int64()),
        pa.field("probability", pa.float64()),
    ]
    fields += [pa.field(name, pa.string()) for name in LINEAGE_COLUMNS[3:]]
    return pa.schema(fields)


def _constant(value: str, rows: int) -> pa.Array:
    """One text value repeated (Arrow's take copies the bytes; no Python string per row)."""
    return pa.array([value], pa.string()).take(pa.array(np.zeros(rows, dtype=np.int32)))


def _scored_table(batch, keep, features, labels, proba, rows, schema, lineage) -> pa.Table:
    columns = []
    mask = pa.array(keep)
    for item in schema:
        if item.name == "row_number":
            columns.append(pa.array(rows[keep], pa.int64()))
        elif item.name == "prediction":
            columns.append(pa.array(labels, pa.int64()))
        elif item.name == "probability":
            columns.append(pa.array(proba, pa.float64()))
        elif item.name in lineage:
            columns.append(_constant(lineage[item.name], len(labels)))
        elif batch.schema.field(item.name).type != item.type:  # a numeric feature parsed from text
            columns.append(features[item.name].filter(mask).cast(item.type))
        else:
            columns.append(batch.column(item.name).filter(mask))
    return pa.Table.from_arrays(columns, schema=schema)


def _predict(
    model: LoadedModel, features: dict[str, pa.Array], keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 predictions, probabilities) of the kept rows on the model's engine.

    The compiled engine is fed from Arrow directly (``OnnxEngine.predict_arrow``); scikit-learn
    gets the pandas frame ``LoadedModel.predict`` takes. Same feeds as the online predictor.
    """
    mask = pa.array(keep)
    kept = {name: column.filter(mask) for name, column in features.items()}
    if model.compiled is not None:
        proba = model.compiled.predict_arrow(kept)
        return (proba >= model.threshold).astype(np.int64), proba
    return model.predict(pa.table(kept).to_pandas())


def _rejects_schema(input_schema: pa.Schema) -> pa.Schema:
    """The input's columns as read (an earlier run's row_number/reject_reason replaced), then why."""
    fields = [item for item in input_schema if item.name not in REJECT_COLUMNS]
    return pa.schema([*fields, pa.field("row_number", pa.int64()), pa.field("reject_reason", pa.string())])


def _rejects_table(
    batch, drop: np.ndarray, rows: np.ndarray, reasons: np.ndarray, schema: pa.Schema
) -> pa.Table:
    mask = pa.array(drop)
    columns = [batch.column(item.name).filter(mask) for item in schema if item.name not in REJECT_COLUMNS]
    columns += [pa.array(rows[drop], pa.int64()), pa.array(reasons[drop], pa.string())]
    return pa.Table.from_arrays(columns, schema=schema)


def score_table(
    model: LoadedModel,
    input_uri: str,
    output_uri: str,
    rejects_uri: str = "",
    run_id: str = "",
    chunk_rows: int = 50_000,
) -> BatchSummary:
    """Score every conforming row of ``input_uri`` into ``output_uri``; every other row into the rejects file."""
    started = time.perf_counter()
    run_id = run_id or uuid.uuid4().hex
    output_uri = expand_uri(output_uri, run_id)
    rejects_uri = expand_uri(rejects_uri, run_id) if rejects_uri else default_rejects_uri(output_uri)
    refuse_overlap(input_uri, output_uri, rejects_uri)
    preflight.check_input(input_uri)
    for uri in (output_uri, rejects_uri):
        preflight.check_writable(uri)
    features = model.feature_names
    source = open_batches(input_uri, chunk_rows, text_columns=features)
    replaced = preflight.check_columns(source.schema, input_uri)
    missing = [name for name in features if name not in source.schema.names]
    if missing:
        raise DataError(
            f"{input_uri} lacks the contract columns {missing} of model {model.name} v{model.version}; "
            "every row would be rejected: check the input file or the model"
        )
    summary = BatchSummary(model.name, model.version, input_uri, output_uri, rejects_uri, "", run_id)
    if replaced:
        summary.warnings.append(
            f"the input is an earlier batch output: its columns {replaced} are replaced by this run's"
        )
        log.warning(summary.warnings[-1])
    summary.engine, summary.engine_reason = model.engine, model.engine_reason
    if model.compiled is None:
        log.warning("scoring %s v%s with scikit-learn: %s", model.name, model.version, model.engine_reason)
    schema = _output_schema(source.schema, model)
    reject_schema = _rejects_schema(source.schema)
    sinks: list[ParquetSink] = []
    counts: dict[str, int] = {}
    try:
        sinks = [ParquetSink(rejects_uri, reject_schema)]
        sinks.append(ParquetSink(output_uri, schema))
        reject_sink, scored_sink = sinks
        summary.input_fingerprint = (
            fingerprint_uri(input_uri, chunk_rows)
            if is_csv(input_uri)
            else fingerprint_parquet(input_uri, chunk_rows)
        )
        lineage = {
            "model_name": model.name,
            "model_version": model.version,
            "input_fingerprint": summary.input_fingerprint,
            "run_id": run_id,
        }
        for batch in source.batches:
            rows = np.arange(summary.rows, summary.rows + batch.num_rows, dtype=np.int64)
            judged = judge_chunk(batch, model.contract)
            keep = judged.keep
            if keep.any():
                labels, proba = _predict(model, judged.features, keep)
                scored_sink.write(
                    _scored_table(batch, keep, judged.features, labels, proba, rows, schema, lineage)
                )
                summary.positives += int(labels.sum())
            if not keep.all():
                reject_sink.write(_rejects_table(batch, ~keep, rows, judged.reasons, reject_schema))
                for rule, count in reason_counts_of(judged.reasons).items():
                    counts[rule] = counts.get(rule, 0) + count
            summary.rows += batch.num_rows
        commit_together(reject_sink, scored_sink)  # the predictions file appears last, and only whole
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    summary.scored, summary.rejected = scored_sink.rows, reject_sink.rows
    summary.reasons = counts
    summary.seconds = time.perf_counter() - started
    log.info(
        "scored %d of %d rows with %s v%s on %s (%d rejected) in %.1fs",
        summary.scored,
        summary.rows,
        model.name,
        model.version,
        model.engine,
        summary.rejected,
        summary.seconds,
    )
    return summary


def refuse_overlap(input_uri: str, output_uri: str, rejects_uri: str) -> None:
    """Output, rejects and input must be three different places: one would overwrite another."""
    from mlstack.core import storage
    from mlstack.core.errors import UsageError

    def where(uri: str) -> tuple[str, str]:
        filesystem, path = storage.filesystem(uri)
        return type(filesystem).__name__, path

    if where(output_uri) == where(rejects_uri):
        raise UsageError(
            f"--output and --rejects are the same file ({output_uri}): the rejects would overwrite the predictions"
        )
    for name, uri in (("--output", output_uri), ("--rejects", rejects_uri)):
        if where(uri) == where(input_uri):
            raise UsageError(f"{name} {uri} is the input: scoring would overwrite the data it reads")


def resolve_spec(spec: str, tracking_uri: str = "") -> tuple[str, str]:
    """``fraud@champion`` -> (``fraud``, ``"3"``) from the registry the settings (or ``tracking_uri``) name."""
    return _registry(tracking_uri)[1].resolve(spec)


def run_scoring(
    model_name: str,
    model_version: str,
    input_uri: str,
    output_uri: str,
    rejects_uri: str = "",
    chunk_rows: int = 0,
    tracking_uri: str = "",
    run_id: str = "",
) -> BatchSummary:
    """Load one pinned model version and score a table with it (the scoring step's whole job)."""
    settings, registry = _registry(tracking_uri)
    model = registry.load_model(f"{model_name}/{model_version}", engine=settings.serving.engine)
    return score_table(
        model, input_uri, output_uri, rejects_uri, run_id, chunk_rows or settings.batch.chunk_rows
    )


def _registry(tracking_uri: str) -> tuple[Settings, mlflow_adapter.Mlflow]:
    settings = load_settings(**({"tracking_uri": tracking_uri} if tracking_uri else {}))
    return settings, mlflow_adapter.from_settings(settings)
