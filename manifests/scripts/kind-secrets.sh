#!/usr/bin/env bash
# Create the Secrets the mlstack chart reads, on a kind cluster, without ever printing them.
# Idempotent: existing passwords are kept; the S3 credentials are re-copied from KFP's SeaweedFS.
#   usage: kind-secrets.sh NAMESPACE S3_ENDPOINT(host:port) [KUBECTL]
set -euo pipefail
ns="${1:?namespace}"
s3_endpoint="${2:?s3 endpoint host:port}"
kubectl="${3:-kubectl}"

exists() { "$kubectl" -n "$ns" get secret "$1" >/dev/null 2>&1; }
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
apply_secret() {  # name, then --from-literal args; applied server-side, never echoed
  local name="$1"; shift
  "$kubectl" -n "$ns" create secret generic "$name" "$@" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  echo "secret/$name ready in $ns"
}

"$kubectl" get namespace "$ns" >/dev/null 2>&1 || "$kubectl" create namespace "$ns"

# S3: KFP's SeaweedFS credentials, annotated for KServe's storage initializer
access_key="$("$kubectl" -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}' | base64 -d)"
secret_key="$("$kubectl" -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}' | base64 -d)"
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
