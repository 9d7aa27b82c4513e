"""The thin KFP components of the training pipeline (ingest … register, deploy), one per step.

Kept apart from the step modules because inside a running component KFP's runtime ``kfp.dsl``
has no ``component`` decorator: a step module that defined components could not be imported by
the component that runs it. Each body imports its step function and does only I/O.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from mlstack.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest_op(data_uri: str, dataset: Output[Dataset]) -> str:
    """Load the data into a Parquet artifact; returns the data fingerprint."""
    from mlstack.components.errors import fail_step
    from mlstack.components.ingest import ingest
    from mlstack.core import data as dataio
    from mlstack.core.errors import MlstackError

    try:
        frame, fingerprint = ingest(data_uri)
    except MlstackError as exc:
        fail_step(str(exc))
    dataio.save_table(frame, dataset.path)  # no extension: Parquet
    dataset.metadata.update({"rows": len(frame), "fingerprint": fingerprint, "source": data_uri})
    return fingerprint


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_op(dataset: Input[Dataset], contract_yaml: str, tolerance: float, report: Output[HTML]) -> str:
    """Write the HTML validation report; fail the task (and the run) when the data breaks the contract."""
    from mlstack.components.errors import fail_step
    from mlstack.components.validate import validate_dataset
    from mlstack.core import data as dataio
    from mlstack.core.contract import DataContract

    result = validate_dataset(
        dataio.load_table(dataset.path), DataContract.from_yaml(contract_yaml), tolerance
    )
    with open(report.path, "w") as handle:
        handle.write(result.to_html())
    if not result.passed:
        fail_step(f"data validation failed: {result.summary()}")
    return result.summary()


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_op(
    dataset: Input[Dataset],
    contract_yaml: str,
    config_json: str,
    model: Output[Model],
    train_set: Output[Dataset],
    eval_set: Output[Dataset],
):
    """Split the data, fit the model, write the fitted pipeline (joblib) and both splits."""
    import joblib

    from mlstack.components.train import split, train
    from mlstack.core import data as dataio
    from mlstack.core.contract import DataContract
    from mlstack.core.settings import TrainingConfig

    contract = DataContract.from_yaml(contract_yaml)
    config = TrainingConfig.model_validate_json(config_json)
    train_frame, eval_frame = split(dataio.load_table(dataset.path), contract, config)
    pipeline = train(train_frame, contract, config)
    joblib.dump(pipeline, model.path)
    model.metadata.update(
        {"framework": "scikit-learn", "estimator": config.estimator, "rows": len(train_frame)}
    )
    dataio.save_table(train_frame, train_set.path)
    dataio.save_table(eval_frame, eval_set.path)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_op(
    model: Input[Model],
    eval_set: Input[Dataset],
    contract_yaml: str,
    config_json: str,
    tracking_uri: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    model_card: Output[Markdown],
) -> NamedTuple("EvaluateOutputs", [("decision", str), ("summary", str)]):  # type: ignore[valid-type]  # KFP's form for several outputs
    """Metrics for the Kubeflow UI, the gate verdict ('passed'/'failed') and a JSON summary."""
    import json
    from collections import namedtuple

    import joblib
    from sklearn.metrics import confusion_matrix

    from mlstack.adapters.mlflow import MlflowAddress, connect
    from mlstack.components.evaluate import champion_metrics, evaluate, judge, render_model_card, roc_points
    from mlstack.core import data as dataio
    from mlstack.core.contract import DataContract
    from mlstack.core.settings import TrainingConfig

    contract = DataContract.from_yaml(contract_yaml)
    config = TrainingConfig.model_validate_json(config_json)
    frame = dataio.load_table(eval_set.path)
    result = evaluate(joblib.load(model.path), frame, contract, config.threshold, config.slice_feature)
    champion, champion_problem = champion_metrics(
        config.model_name, connect(MlflowAddress.of(tracking_uri)), frame, contract
    )
    verdict = judge(result.metrics, config.gates, champion, champion_problem)

    for name, value in result.metrics.items():
        metrics.log_metric(name, round(value, 6))
    fpr, tpr, thresholds = roc_points(result.labels, result.probabilities)
    classification.log_roc_curve(fpr, tpr, thresholds)
    classification.log_confusion_matrix(
        ["negative", "positive"], confusion_matrix(result.labels, result.predictions, labels=[0, 1]).tolist()
    )
    summary = {
        "metrics": result.metrics,
        "slices": result.slices,
        "gates": {"passed": verdict.passed, "reasons": verdict.reasons},
        "champion_metrics": champion,
        "predictions_sha256": result.predictions_sha256,
    }
    with open(model_card.path, "w") as handle:
        handle.write(render_model_card(config.model_name, config, summary))
    print("\n".join(verdict.reasons), flush=True)
    EvaluateOutputs = namedtuple("EvaluateOutputs", ["decision", "summary"])
    return EvaluateOutputs("passed" if verdict.passed else "failed", json.dumps(summary))


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_op(
    model: Input[Model],
    train_set: Input[Dataset],
    eval_set: Input[Dataset],
    contract_yaml: str,
    config_json: str,
    summary_json: str,
    data_fingerprint: str,
    data_uri: str,
    git_commit: str,
    lock_sha256: str,
    pipeline_run_id: str,
    tracking_uri: str,
    experiment: str,
    register: bool,
) -> str:
    """Log the run; register the model when it passed. Returns the run's result as JSON."""
    import json

    import joblib

    from mlstack.adapters.mlflow import MlflowAddress, connect
    from mlstack.components.register import Lineage, config_hash, log_and_register
    from mlstack.core import data as dataio
    from mlstack.core.contract import DataContract
    from mlstack.core.settings import TrainingConfig

    contract = DataContract.from_yaml(contract_yaml)
    config = TrainingConfig.model_validate_json(config_json)
    lineage = Lineage(
        data_fingerprint, data_uri, git_commit, lock_sha256, pipeline_run_id, config_hash(config, contract)
    )
    result = log_and_register(
        joblib.load(model.path),
        dataio.load_table(train_set.path),
        contract,
        config,
        json.loads(summary_json),
        lineage,
        connect(MlflowAddress.of(tracking_uri)),
        experiment,
        register,
        eval_frame=dataio.load_table(eval_set.path),
    )
    print(
        json.dumps({k: result[k] for k in ("run_id", "model_name", "model_version", "aliases")}), flush=True
    )
    return json.dumps(result)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_canary_op(
    register_result: str,
    deploy: bool,
    inference_service: str,
    namespace: str,
    percent: int = 0,
    storage_uri: str = "",
    tracking_uri: str = "",
) -> str:
    """Serve the version ``register_op`` registered (create the service, or a canary), when ``deploy`` is on; JSON of what was done."""
    import json

    from mlstack.components.deploy import deploy_step
    from mlstack.components.errors import fail_step
    from mlstack.core.errors import MlstackError

    registered = json.loads(register_result)
    try:
        result = deploy_step(
            deploy,
            registered.get("model_name") or "",
            registered.get("model_version") or "",
            inference_service or registered.get("model_name") or "",
            namespace,
            storage_uri,
            percent,
            tracking_uri=tracking_uri,
        )
    except MlstackError as exc:
        fail_step(str(exc))
    print(json.dumps(result), flush=True)
    return json.dumps(result)
