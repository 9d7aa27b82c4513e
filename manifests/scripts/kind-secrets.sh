#!/usr/bin/env bash
# Create the Secrets the mlstack chart reads, on a kind cluster, without ever printing them, and
# the copies KFP pipeline steps read in the pipeline namespace (pipelines/cluster_env.py).
# Idempotent: existing passwords are kept; the S3 credentials are re-copied from KFP's SeaweedFS.
#   usage: kind-secrets.sh NAMESPACE S3_ENDPOINT(host:port) [KUBECTL] [PIPELINE_NAMESPACE]
set -euo pipefail
ns="${1:?namespace}"
s3_endpoint="${2:?s3 endpoint host:port}"
kubectl="${3:-kubectl}"
pipeline_ns="${4:-kubeflow}"

exists() { "$kubectl" -n "$ns" get secret "$1" >/dev/null 2>&1; }
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
fernet_key() { head -c 32 /dev/urandom | base64 | tr '+/' '-_'; }  # what Fernet.generate_key() makes
apply_secret() {  # name, then --from-literal args; applied server-side, never echoed
  local name="$1"; shift
  apply_secret_in "$ns" "$name" "$@"
}
apply_secret_in() {  # namespace, name, then --from-literal args
  local namespace="$1" name="$2"; shift 2
  "$kubectl" -n "$namespace" create secret generic "$name" "$@" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  echo "secret/$name ready in $namespace"
}
secret_value() {  # namespace, secret, key -> the decoded value on stdout (captured, never printed)
  "$kubectl" -n "$1" get secret "$2" -o jsonpath="{.data.$3}" | base64 -d
}

"$kubectl" get namespace "$ns" >/dev/null 2>&1 || "$kubectl" create namespace "$ns"

# S3: KFP's SeaweedFS credentials, annotated for KServe's storage initializer
access_key="$(secret_value kubeflow mlpipeline-minio-artifact accesskey)"
secret_key="$(secret_value kubeflow mlpipeline-minio-artifact secretkey)"
if [ -z "$access_key" ] || [ -z "$secret_key" ]; then
  echo "error: kubeflow/mlpipeline-minio-artifact has no accesskey/secretkey; is KFP installed (make platform)?" >&2
  exit 1
fi
apply_secret mlstack-s3 --from-literal=AWS_ACCESS_KEY_ID="$access_key" --from-literal=AWS_SECRET_ACCESS_KEY="$secret_key"
"$kubectl" -n "$ns" annotate --overwrite secret mlstack-s3 \
  serving.kserve.io/s3-endpoint="$s3_endpoint" serving.kserve.io/s3-usehttps=0 \
  serving.kserve.io/s3-region=us-east-1 serving.kserve.io/s3-verifyssl=0 >/dev/null

# Postgres and MLflow basic-auth: generated once, kept afterwards
exists mlstack-postgres || apply_secret mlstack-postgres --from-literal=username=mlflow --from-literal=password="$(random)"
exists mlstack-mlflow-auth || apply_secret mlstack-mlflow-auth --from-literal=admin-username=admin \
  --from-literal=admin-password="$(random)" --from-literal=flask-secret-key="$(random)"

# the rollout controller (off unless rolloutController.enabled): the secret MLflow signs webhook
# deliveries with, and the key MLflow encrypts stored webhook secrets with (one for all workers)
exists mlstack-rollout-webhook || apply_secret mlstack-rollout-webhook --from-literal=webhook-secret="$(random)"
exists mlstack-mlflow-webhooks || apply_secret mlstack-mlflow-webhooks --from-literal=encryption-key="$(fernet_key)"

# KFP runs pipeline steps in its own namespace: the same credentials there, and the S3 endpoint
"$kubectl" get namespace "$pipeline_ns" >/dev/null 2>&1 || "$kubectl" create namespace "$pipeline_ns"
apply_secret_in "$pipeline_ns" mlstack-s3 --from-literal=AWS_ACCESS_KEY_ID="$access_key" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$secret_key"
apply_secret_in "$pipeline_ns" mlstack-mlflow-auth \
  --from-literal=admin-username="$(secret_value "$ns" mlstack-mlflow-auth admin-username)" \
  --from-literal=admin-password="$(secret_value "$ns" mlstack-mlflow-auth admin-password)"
"$kubectl" -n "$pipeline_ns" create configmap mlstack-pipeline-env --from-literal=AWS_DEFAULT_REGION=us-east-1 \
  --from-literal=MLSTACK_S3_ENDPOINT_URL="http://$s3_endpoint" --from-literal=MLFLOW_S3_ENDPOINT_URL="http://$s3_endpoint" \
  --from-literal=AWS_ENDPOINT_URL_S3="http://$s3_endpoint" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
echo "configmap/mlstack-pipeline-env ready in $pipeline_ns"
