#!/usr/bin/env bash
# Wait until the admission webhook behind Service NAMESPACE/SERVICE serves, or give up at a deadline
# with one line saying what is missing, then the Deployment, pods and recent events (as KServe's
# installer does on a timeout: hack/setup/common.sh wait_for_deployment @ v0.20.0).
#
# "Serves" means both:
#  - every webhook of every Validating/MutatingWebhookConfiguration that names the Service carries a
#    caBundle (Knative's webhook writes its own: knative.dev/pkg webhook/configmaps/configmaps.go
#    reconcileValidatingWebhook; KServe's comes from cert-manager's CA injector), and at least one
#    such webhook exists;
#  - the Service has a ready endpoint (the webhook pod passed its readiness probe: Knative's probes
#    HTTPS :8443, config/core/deployments/webhook.yaml @ knative-v1.21.1).
# Until then the API server refuses every object the webhook covers ("failed calling webhook").
#   usage: wait-webhook.sh NAMESPACE SERVICE TIMEOUT_SECONDS [KUBECTL]
set -uo pipefail
namespace="${1:?namespace}"
service="${2:?service}"
timeout="${3:?timeout seconds}"
kubectl="${4:-kubectl}"
case "$timeout" in '' | *[!0-9]*) echo "error: TIMEOUT_SECONDS must be a whole number" >&2; exit 2;; esac

missing() {  # prints what is not there yet; prints nothing once the webhook serves
  local bundles ready
  bundles="$("$kubectl" get validatingwebhookconfigurations,mutatingwebhookconfigurations -o \
    jsonpath='{range .items[*]}{range .webhooks[*]}{.clientConfig.service.namespace}/{.clientConfig.service.name} {.clientConfig.caBundle}{"\n"}{end}{end}' 2>&1)" \
    || { echo "cannot list webhook configurations: $bundles"; return; }
  bundles="$(printf '%s\n' "$bundles" | awk -v svc="$namespace/$service" '$1 == svc')"
  if [ -z "$bundles" ]; then
    echo "no webhook configuration names $namespace/$service yet"
    return
  fi
  if printf '%s\n' "$bundles" | awk 'NF < 2 { found = 1 } END { exit !found }'; then
    echo "a webhook naming $namespace/$service has no caBundle yet (its certificate is not in place)"
    return
  fi
  ready="$("$kubectl" -n "$namespace" get endpointslices -l "kubernetes.io/service-name=$service" -o \
    jsonpath='{range .items[*].endpoints[*]}{.conditions.ready}{"\n"}{end}' 2>&1)" \
    || { echo "cannot read the endpoints of $namespace/$service: $ready"; return; }
  if ! printf '%s\n' "$ready" | grep -qx true; then
    echo "Service $namespace/$service has no ready endpoint (its pod is not Ready)"
  fi
}

start=$SECONDS
last=""
while :; do
  why="$(missing)"
  if [ -z "$why" ]; then
    echo "webhook $namespace/$service serves (after $((SECONDS - start))s)"
    exit 0
  fi
  if [ $((SECONDS - start)) -ge "$timeout" ]; then
    echo "error: the webhook $namespace/$service did not serve within ${timeout}s: $why;" \
      "the objects it validates cannot be applied. Check: $kubectl -n $namespace get pods,events" >&2
    "$kubectl" -n "$namespace" get deployments,pods -o wide >&2 2>&1 || true
    "$kubectl" -n "$namespace" get events --sort-by=.lastTimestamp 2>/dev/null | tail -20 >&2 || true
    exit 1
  fi
  if [ "$why" != "$last" ]; then
    echo "waiting for webhook $namespace/$service (up to ${timeout}s): $why"
    last="$why"
  fi
  sleep 2
done
