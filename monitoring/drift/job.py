"""The drift job: judge one model version's recent inputs against its reference, then publish.

``evaluate`` is the pure-ish core (frames in, result dict + Evidently snapshot out); ``run`` adds
the I/O: inputs from MLflow / the payload log / files, the Evidently workspace, the HTML report
and the Pushgateway. The result is what ``mlstack drift --json`` prints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlstack.adapters.mlflow import Mlflow
from mlstack.core.contract import DataContract
from mlstack.core.errors import CheckFailed, MlstackError
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift import checks as drift_checks
from mlstack.monitoring.drift import judge, metrics, stats, workspace
from mlstack.monitoring.drift import report as drift_report
from mlstack.monitoring.drift.columns import Scorer, read_column, read_outputs
from mlstack.monitoring.drift.inputs import DriftInputs, gather
from mlstack.monitoring.drift.tables import FrameTable, Table

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    result: dict
    snapshot: object | None


PUBLISH_FAILED_EXIT = 3  # the verdict was computed and printed, but the Pushgateway refused it


def _insufficient(
    model: str, version: str, rows: int, config: DriftConfig, message: str | None = None
) -> dict:
    return {
        "model": model,
        "version": version,
        "rows": rows,
        "status": metrics.INSUFFICIENT_STATUS,
        "message": message
        or f"{rows} rows in the window, at least {config.min_rows} needed; no drift verdict",
        "drift_detected": None,
        "drifted_share": None,
        "features": {},
        "prediction_drift": None,
    }


def _table(data: pd.DataFrame | Table) -> Table:
    return FrameTable(data) if isinstance(data, pd.DataFrame) else data


def evaluate(
    model: str,
    version: str,
    reference: pd.DataFrame | Table,
    current: pd.DataFrame | Table,
    contract: DataContract,
    config: DriftConfig,
    timestamp: datetime | None = None,
    scorer: Scorer | None = None,
) -> Outcome:
    """Judge ``current`` against ``reference`` on every row: never a 'no drift' verdict on too little data.

    ``scorer`` predicts rows that carry no model outputs. Raises CheckFailed naming the columns
    when either side does not match the contract.
    """
    reference, current = _table(reference), _table(current)
    rows = current.rows
    if rows < config.min_rows:
        return Outcome(_insufficient(model, version, rows, config), None)
    if reference.rows < config.min_rows:
        message = (
            f"the reference holds {reference.rows} rows, at least {config.min_rows} (drift.min_rows) "
            "needed; no drift verdict"
        )
        return Outcome(_insufficient(model, version, rows, config, message), None)
    # the reference first (small): its columns pin the methods; then the window, one column at a time
    ref_reads = {f.name: read_column(reference, contract, f, reference=True) for f in contract.features}
    distinct = {
        name: read.side.distinct
        for name, read in ref_reads.items()
        if isinstance(read.side, stats.NumericSide)
    }
    pinned = drift_checks.pin_methods(distinct, contract, config)
    cur_reads, drifts = {}, []
    for feature in contract.features:
        read = read_column(current, contract, feature, reference=False)
        ref_side = ref_reads[feature.name].side
        if read.side is not None and ref_side is not None and not read.problem:
            drifts.append(
                judge.judge_feature(feature, ref_side, read.side, pinned[feature.name], (reference, current))
            )
        cur_reads[feature.name] = replace(read, side=None)  # the column's values go now
    for name, reads in (("current", cur_reads), ("reference", ref_reads)):
        problems = [read.problem for read in reads.values() if read.problem]
        if problems:
            raise CheckFailed(f"{name} data does not match model {model!r}'s contract: {', '.join(problems)}")
    # a feature with no value on one side has no distribution to compare (Evidently refuses an
    # empty column); it is judged by its missing share below, which is exactly the drift it shows
    if not drifts:
        raise CheckFailed(f"every feature of model {model!r} is empty in the reference or the window")
    ref_outputs, cur_outputs = (
        read_outputs(reference, contract, scorer),
        read_outputs(current, contract, scorer),
    )
    output = drift_checks.prediction_output(ref_outputs, cur_outputs, config)
    prediction_drift = judge.judge_prediction(ref_outputs, cur_outputs, output)
    snapshot = drift_report.build_snapshot(
        drifts,
        prediction_drift,
        config.drift_share,
        timestamp=timestamp,
        metadata={"model": model, "version": str(version), "rows": rows},
        tags=[f"model={model}", f"version={version}"],
    )
    by_column = {drift.column: drift for drift in drifts}
    missing_ref = {name: read.missing / reference.rows for name, read in ref_reads.items()}
    missing_cur = {name: read.missing / rows for name, read in cur_reads.items()}
    out_of_contract = {name: min(1.0, read.broken / rows) for name, read in cur_reads.items()}
    entries = {}
    for name in contract.feature_names:
        drift = by_column.get(name)
        entries[name] = {
            "score": None if drift is None else drift.score,
            "method": pinned[name].method if drift is not None else "missing_share",
            "threshold": pinned[name].threshold,
            "drifted": bool(drift is not None and drift.drifted),
            "missing_share": {"reference": missing_ref[name], "current": missing_cur[name]},
            "missing_drifted": bool(missing_cur[name] - missing_ref[name] > config.missing_share_increase),
            "out_of_contract_share": out_of_contract[name],
        }
    # Evidently's DriftedColumnsCount: drifted among the columns judged, share of those
    drifted_share = sum(drift.drifted for drift in drifts) / len(drifts)
    missing_drifted = sorted(n for n, e in entries.items() if e["missing_drifted"])
    contract_broken = sorted(
        n for n, share in out_of_contract.items() if share > config.max_out_of_contract_share
    )
    distribution_drift = drifted_share >= config.drift_share
    prediction = None
    if prediction_drift is not None:
        prediction = {
            "column": prediction_drift.column,
            "score": prediction_drift.score,
            "method": prediction_drift.method,
            "threshold": prediction_drift.threshold,
            "drifted": prediction_drift.drifted,
        }
    result = {
        "model": model,
        "version": str(version),
        "rows": rows,
        "reference_rows": reference.rows,
        "status": metrics.OK_STATUS,
        "drift_detected": bool(distribution_drift or missing_drifted or contract_broken),
        "drifted_share": drifted_share,
        "features": entries,
        "prediction_drift": prediction,
        "outputs": output.outputs,
        "data_quality": {
            "distribution_drift": bool(distribution_drift),
            "missing_drifted": missing_drifted,
            "out_of_contract": contract_broken,
        },
        "performance": drift_checks.performance(ref_outputs, cur_outputs, contract, config),
    }
    return Outcome(result, snapshot)


def _nothing_to_do(
    model: str, reason: str, config: DriftConfig, pushgateway: str | None, started: float
) -> dict:
    """The result of a run before the first deploy: success, and a metric saying it judged nothing."""
    result: dict = {
        "model": model,
        "version": metrics.NO_VERSION,
        "status": metrics.NOTHING_TO_DO_STATUS,
        "rows": 0,
        "drift_detected": None,
        "message": f"nothing to do: {reason} (the first deploy makes one)",
    }
    log.info("drift %s: %s", model, result["message"])
    if pushgateway:
        try:
            metrics.push(pushgateway, config.push_job, result, finished_at=time.time())
            result["published"] = True
        except MlstackError as exc:
            log.warning("drift result not published: %s", exc)
            result["published"] = False
            result["publish_error"] = str(exc)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def run(
    model: str,
    version: str | None,
    config: DriftConfig,
    *,
    registry: Mlflow,
    store: str,
    workspace_uri: str | None,
    window: timedelta,
    reference_uri: str | None = None,
    current_uri: str | None = None,
    pushgateway: str | None = None,
    now: datetime | None = None,
) -> dict:
    """One job run end to end; returns the result dict (status ok, insufficient_data or nothing_to_do)."""
    started = time.monotonic()
    if version is None and reference_uri is None and current_uri is None:
        from mlstack.monitoring.drift.reference import nothing_to_judge

        reason = nothing_to_judge(registry, model)
        if reason is not None:
            return _nothing_to_do(model, reason, config, pushgateway, started)
    inputs: DriftInputs = gather(
        model,
        version,
        registry=registry,
        window=window,
        reference_uri=reference_uri,
        current_uri=current_uri,
        store=store,
        now=now,
    )
    moment = now or datetime.now(UTC)
    outcome = evaluate(
        inputs.model,
        inputs.version,
        inputs.reference,
        inputs.current,
        inputs.contract,
        config,
        moment,
        scorer=inputs.scorer,
    )
    result = outcome.result
    if inputs.since is not None and inputs.until is not None:  # set together
        result["window"] = {"since": inputs.since.isoformat(), "until": inputs.until.isoformat()}
    if outcome.snapshot is not None and workspace_uri:
        result["workspace"] = workspace.add_snapshot(workspace_uri, inputs.model, outcome.snapshot)
        stamp = moment.strftime("%Y%m%dT%H%M%SZ")
        result["report"] = workspace.save_html(
            workspace_uri, inputs.model, inputs.version, stamp, outcome.snapshot
        )
    if inputs.read_report is not None:
        result["payload_read"] = inputs.read_report
    if pushgateway:
        try:
            metrics.push(pushgateway, config.push_job, result, finished_at=time.time())
            if inputs.registered:
                from mlstack.monitoring.drift.reference import live_versions

                live = live_versions(registry, inputs.model) | {inputs.version}
                result["retired_versions"] = metrics.retire(pushgateway, config.push_job, inputs.model, live)
            result["published"] = True
        except MlstackError as exc:
            log.warning("drift verdict computed but not published: %s", exc)
            result["published"] = False
            result["publish_error"] = str(exc)
    result["seconds"] = round(time.monotonic() - started, 3)
    log.info(
        "drift %s v%s: status=%s rows=%d drift_detected=%s in %.1fs",
        inputs.model,
        inputs.version,
        result["status"],
        result["rows"],
        result["drift_detected"],
        result["seconds"],
    )
    return result
