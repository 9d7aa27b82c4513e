"""The drift job: judge one model version's recent inputs against its reference, then publish.

``evaluate`` is the pure-ish core (frames in, result dict + Evidently snapshot out); ``run`` adds
the I/O: inputs from MLflow / the payload log / files, the Evidently workspace, the HTML report
and the Pushgateway. The result is what ``mlstack drift --json`` prints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlstack.adapters.mlflow import Mlflow
from mlstack.core.contract import DataContract
from mlstack.core.errors import CheckFailed, MlstackError
from mlstack.core.settings import DriftConfig
from mlstack.monitoring.drift import checks as drift_checks
from mlstack.monitoring.drift import metrics, workspace
from mlstack.monitoring.drift import report as drift_report
from mlstack.monitoring.drift.inputs import DriftInputs, gather

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
        "status": "insufficient_data",
        "message": message
        or f"{rows} rows in the window, at least {config.min_rows} needed; no drift verdict",
        "drift_detected": None,
        "drifted_share": None,
        "features": {},
        "prediction_drift": None,
    }


def evaluate(
    model: str,
    version: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    contract: DataContract,
    config: DriftConfig,
    timestamp: datetime | None = None,
) -> Outcome:
    """Judge ``current`` against ``reference``: never a 'no drift' verdict on too little data.

    Raises CheckFailed naming the columns when either frame does not match the contract.
    """
    rows = len(current)
    if rows < config.min_rows:
        return Outcome(_insufficient(model, version, rows, config), None)
    if len(reference) < config.min_rows:
        message = (
            f"the reference holds {len(reference)} rows, at least {config.min_rows} (drift.min_rows) "
            "needed; no drift verdict"
        )
        return Outcome(_insufficient(model, version, rows, config, message), None)
    for name, frame in (("current", current), ("reference", reference)):
        problems = drift_checks.schema_problems(frame, contract)
        if problems:
            raise CheckFailed(f"{name} data does not match model {model!r}'s contract: {', '.join(problems)}")
    pinned = drift_checks.pin_methods(reference, contract, config)
    seed = config.sample_seed
    # a feature with no value on one side has no distribution to compare (Evidently refuses an
    # empty column); it is judged by its missing share below, which is exactly the drift it shows
    empty = drift_checks.empty_features(reference, current, contract)
    judged = contract.model_copy(update={"features": [f for f in contract.features if f.name not in empty]})
    if not judged.features:
        raise CheckFailed(f"every feature of model {model!r} is empty in the reference or the window")
    output = drift_checks.prediction_output(reference, current, config)
    snapshot, scores = drift_report.run_report(
        drift_checks.seeded_sample(reference, config.sample_rows, seed),
        drift_checks.seeded_sample(current, config.sample_rows, seed),
        judged,
        pinned,
        config,
        output,
        timestamp=timestamp,
        metadata={"model": model, "version": str(version), "rows": rows},
        tags=[f"model={model}", f"version={version}"],
    )
    features = contract.feature_names
    missing_ref = drift_checks.missing_shares(reference, features)
    missing_cur = drift_checks.missing_shares(current, features)
    out_of_contract = drift_checks.out_of_contract_shares(current, contract)
    entries = {}
    for name in features:
        score = scores.features.get(name)
        missing_rise = missing_cur[name] - missing_ref[name]
        entries[name] = {
            "score": score,
            "method": pinned[name].method if score is not None else "missing_share",
            "threshold": pinned[name].threshold,
            "drifted": bool(score is not None and score >= pinned[name].threshold),
            "missing_share": {"reference": missing_ref[name], "current": missing_cur[name]},
            "missing_drifted": bool(missing_rise > config.missing_share_increase),
            "out_of_contract_share": out_of_contract[name],
        }
    missing_drifted = sorted(n for n, e in entries.items() if e["missing_drifted"])
    contract_broken = sorted(n for n in features if out_of_contract[n] > config.max_out_of_contract_share)
    distribution_drift = scores.drifted_share >= config.drift_share
    prediction = None
    if scores.prediction is not None and output.pinned is not None:
        prediction = {
            "column": output.column,
            "score": scores.prediction,
            "method": output.pinned.method,
            "threshold": output.pinned.threshold,
            "drifted": bool(scores.prediction >= output.pinned.threshold),
        }
    result = {
        "model": model,
        "version": str(version),
        "rows": rows,
        "status": "ok",
        "drift_detected": bool(distribution_drift or missing_drifted or contract_broken),
        "drifted_share": scores.drifted_share,
        "features": entries,
        "prediction_drift": prediction,
        "outputs": output.outputs,
        "data_quality": {
            "distribution_drift": bool(distribution_drift),
            "missing_drifted": missing_drifted,
            "out_of_contract": contract_broken,
        },
        "performance": drift_checks.performance(reference, current, contract, config),
        "sampled_rows": {
            "reference": min(len(reference), config.sample_rows),
            "current": min(rows, config.sample_rows),
        },
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
        inputs.model, inputs.version, inputs.reference, inputs.current, inputs.contract, config, moment
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
