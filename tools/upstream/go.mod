// Upstream projects whose release content the tests render from source (tests/fixtures/upstream.py):
// CRDs, controllers' RBAC, Deployments, webhooks, config maps; kind's default node image (its digest,
// tests/unit/test_pinned_images.py); kwok's default pod stages (tests/fixtures/reconciler_platform.py).
// Nothing here is compiled; go.sum pins each module's hash so `go mod download` hands the tests exactly
// these trees.
module github.com/mlstack/mlstack/tools/upstream

go 1.25.8

require (
	github.com/cert-manager/cert-manager v1.19.1
	github.com/kserve/kserve v0.20.0
	github.com/prometheus-operator/prometheus-operator v0.90.1
	knative.dev/caching v0.0.0-20260120130310-f1fc03b7f5ee
	knative.dev/net-kourier v0.48.0
	knative.dev/networking v0.0.0-20260120131110-a7cdca238a0d
	knative.dev/serving v0.48.1
	sigs.k8s.io/kind v0.30.0
	sigs.k8s.io/kwok v0.7.0
)
