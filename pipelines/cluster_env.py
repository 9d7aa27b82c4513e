"""What a pipeline step needs from the cluster: S3 and MLflow credentials, and where the object store is.

KFP runs every step in the pipeline namespace (``kubeflow`` on standalone KFP), not next to the
chart, so the steps that read ``s3://`` data or talk to MLflow get their environment from two
Secrets and a ConfigMap there. Pipeline parameters name them (defaults below, the names the chart
uses); ``make deploy`` creates them on kind (``manifests/scripts/kind-secrets.sh``).

Every reference is optional: on a cluster with an anonymous MLflow and workload-identity S3 none is
needed, and a missing one leaves the variable unset instead of failing the pod. ``kfp.local``
ignores these platform settings; a local run takes its environment from the shell.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

S3_SECRET = "mlstack-s3"
MLFLOW_SECRET = "mlstack-mlflow-auth"
ENV_CONFIG_MAP = "mlstack-pipeline-env"

S3_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
MLFLOW_KEYS = {"admin-username": "MLFLOW_TRACKING_USERNAME", "admin-password": "MLFLOW_TRACKING_PASSWORD"}
# the same names the chart's own jobs get (helm/mlstack/templates/_helpers.tpl, mlstack.s3Env)
ENV_KEYS = {
    name: name
    for name in (
        "AWS_DEFAULT_REGION",
        "MLSTACK_S3_ENDPOINT_URL",
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    )
}


def with_cluster_env(task: PipelineTask, s3_secret, mlflow_secret, env_config_map) -> PipelineTask:
    """Give ``task`` the object-store and MLflow credentials and the S3 endpoint, all optional."""
    kubernetes.use_secret_as_env(task, s3_secret, S3_KEYS, optional=True)
    kubernetes.use_secret_as_env(task, mlflow_secret, MLFLOW_KEYS, optional=True)
    kubernetes.use_config_map_as_env(task, env_config_map, ENV_KEYS, optional=True)
    return task
