"""The training pipeline: ingest → validate → train → evaluate ─gate─► register (or record the rejection).

The same pipeline object runs on Kubeflow (compiled IR) and locally through ``kfp.local``.
"""

from kfp import dsl

from components.deploy_op import deploy_canary_op
from components.ops import evaluate_op, ingest_op, register_op, train_op, validate_op
from pipelines.cluster_env import ENV_CONFIG_MAP, MLFLOW_SECRET, S3_SECRET, with_cluster_env

PIPELINE_NAME = "mlstack-training"


@dsl.pipeline(
    name=PIPELINE_NAME, description="Train, evaluate, gate and register a scikit-learn model in MLflow."
)
def training_pipeline(
    data_uri: str,
    contract_yaml: str,
    config_json: str,
    tracking_uri: str,
    experiment: str = "mlstack",
    validation_tolerance: float = 0.01,
    git_commit: str = "unknown",
    lock_sha256: str = "unknown",
    deploy: bool = False,
    inference_service: str = "",
    namespace: str = "mlstack",
    canary_percent: int = 10,
    s3_secret: str = S3_SECRET,
    mlflow_secret: str = MLFLOW_SECRET,
    env_config_map: str = ENV_CONFIG_MAP,
) -> str:
    """Returns the run's result as JSON (the same shape whether the gate passed or not).

    ``s3_secret``, ``mlflow_secret`` and ``env_config_map`` name the Secrets and the ConfigMap in
    the pipeline namespace that give the steps reading ``s3://`` or talking to MLflow their
    credentials (see ``pipelines/cluster_env.py``).
    """

    def cluster_env(task):
        return with_cluster_env(task, s3_secret, mlflow_secret, env_config_map)

    ingest = cluster_env(ingest_op(data_uri=data_uri, contract_yaml=contract_yaml))
    ingest.set_caching_options(False)  # the data behind a URI can change

    validate = validate_op(
        dataset=ingest.outputs["dataset"], contract_yaml=contract_yaml, tolerance=validation_tolerance
    )
    train = train_op(dataset=ingest.outputs["dataset"], contract_yaml=contract_yaml, config_json=config_json)
    train.after(validate)
    train.set_cpu_limit("2").set_memory_limit("4G")  # deterministic for the same inputs: cache stays on
    # no retry: training is deterministic, so a retry repeats the same failure (too few rows per
    # class, a bad parameter) and hides its cause; an evicted pod is rescheduled by re-running

    evaluate = cluster_env(
        evaluate_op(
            model=train.outputs["model"],
            eval_set=train.outputs["eval_set"],
            contract_yaml=contract_yaml,
            config_json=config_json,
            tracking_uri=tracking_uri,
        )
    )
    evaluate.set_caching_options(False)  # depends on the current champion, which changes

    common = dict(
        model=train.outputs["model"],
        train_set=train.outputs["train_set"],
        eval_set=train.outputs["eval_set"],
        contract_yaml=contract_yaml,
        config_json=config_json,
        summary_json=evaluate.outputs["summary"],
        data_fingerprint=ingest.outputs["Output"],
        data_uri=data_uri,
        git_commit=git_commit,
        lock_sha256=lock_sha256,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tracking_uri=tracking_uri,
        experiment=experiment,
    )
    with dsl.If(evaluate.outputs["decision"] == "passed", name="gate-passed"):
        registered = cluster_env(register_op(register=True, **common)).set_display_name("register")
        registered.set_caching_options(False)  # side effects: never skip, never retry (no duplicate versions)
        with dsl.If(deploy == True, name="deploy-enabled"):  # noqa: E712 (a pipeline condition, not Python)
            # MLflow credentials and the S3 endpoint from the pipeline namespace, as for register
            deployed = cluster_env(
                deploy_canary_op(
                    register_result=registered.output,
                    deploy=deploy,
                    inference_service=inference_service,
                    namespace=namespace,
                    percent=canary_percent,
                    tracking_uri=tracking_uri,
                )
            ).set_display_name("deploy")
            deployed.set_caching_options(False)  # talks to the cluster
    with dsl.Else(name="gate-failed"):
        rejected = cluster_env(register_op(register=False, **common)).set_display_name("record-rejection")
        rejected.set_caching_options(False)
    return dsl.OneOf(registered.output, rejected.output)
