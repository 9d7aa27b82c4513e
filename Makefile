# mlstack — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export MLSTACK_HOME ?= $(CURDIR)/.mlstack
# Python caches compiled modules (.pyc) on first import. With PYTHONDONTWRITEBYTECODE=1 (set on some
# machines and images) every process compiles mlflow, pandas, ... from source again, several times
# slower than a cached import; compiling the whole venv at install costs more than caching what is
# actually imported, so make's commands let Python write its cache.
unexport PYTHONDONTWRITEBYTECODE
UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bin/uv
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# Debian packages the tests start for real (promtool, Pushgateway, PostgreSQL, headless Chromium, load generators)
APT_PACKAGES := prometheus prometheus-pushgateway postgresql chromium wrk hey
PYTEST_ARGS ?=
# Go builds the control-plane test tools (make test-tools); empty when go is not on PATH
GO ?= $(shell command -v go 2>/dev/null)
# Maven fetches the Kafka broker the streaming tests start (make test-kafka); empty when mvn is not on PATH
MVN ?= $(shell command -v mvn 2>/dev/null)

##@ General

.PHONY: help
help: ## Show every target with a one-line description
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	/^[a-zA-Z0-9_.-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

.PHONY: setup
setup: $(VENV)/.synced system-deps ## Create .venv from uv.lock, install Debian test packages and the kubectl-model plugin; use the repo's git hooks
	@mkdir -p bin && ln -sf $(VENV)/bin/kubectl-model bin/kubectl-model
	@if git rev-parse --git-dir >/dev/null 2>&1; then git config core.hooksPath .githooks; fi
	@echo "ready: source .venv/bin/activate; put $(CURDIR)/bin on PATH for 'kubectl model'"

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (skipped when all are present)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "error: missing Debian packages:$$missing — run: sudo apt-get install$$missing" >&2; exit 2; fi; \
	fi

.PHONY: test
test: setup $(if $(GO),test-tools) $(if $(MVN),test-kafka) ## Run unit and integration tests (installs everything it needs first; builds the test tools when Go is on PATH, fetches Kafka when Maven is)
	$(PY) -m pytest -m "not e2e" --durations=25 $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.synced ## Run only the unit tests (fast, no servers)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

.PHONY: test-canary
test-canary: $(VENV)/.synced ## Run the canary area's tests (state machine, analysis, kubectl-model, deploy step) on KServe's and Knative's controllers (make test-tools first)
	$(PY) -m pytest tests/unit/test_canary_state.py tests/unit/test_canary_analysis.py tests/integration/test_kubectl_model.py tests/integration/test_kubectl_model_failures.py tests/integration/test_kserve_phases.py tests/integration/test_canary_on_reconcilers.py tests/integration/test_canary_analyze.py tests/integration/test_deploy_component.py $(PYTEST_ARGS)

.PHONY: lint
lint: $(VENV)/.synced ## Lint, format-check, check the import floors (import-linter), type-check (mypy), check commit messages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) tools/commit_msg.py

.PHONY: docs
docs: $(VENV)/.synced ## Regenerate the reference tables: settings (docs/configuration.md), chart values (helm/mlstack/README.md), commands (docs/cli.md)
	$(PY) tools/settings_table.py
	$(PY) tools/chart_readme.py
	$(PY) tools/cli_reference.py

.PHONY: fmt
fmt: $(VENV)/.synced ## Format the Python code (ruff)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: kafka-local
kafka-local: $(VENV)/.synced test-kafka ## Run a one-node Kafka (KRaft) on 127.0.0.1:9092 in the foreground, for mlstack stream on this machine
	$(PY) -m tests.fixtures.kafka --port 9092

.PHONY: demo
demo: setup ## Run the whole loop on this machine, no cluster (report: MLSTACK_HOME/demo/report.html)
	$(VENV)/bin/mlstack demo $(DEMO_ARGS)

.PHONY: clean
clean: ## Remove local state (MLSTACK_HOME) and build outputs (keeps .venv)
	rm -rf $(MLSTACK_HOME) build/

##@ Test tools

# The control plane the tests start (etcd, kube-apiserver, kube-controller-manager) plus kubectl and
# helm, built from the Go modules under tools/ at the versions in manifests/versions.env; each
# module's go.sum pins every dependency. No package registry ships these binaries; the Go module
# proxy serves their source. Each is a file target bin/<tool>-<version>, so a second run rebuilds
# nothing (and Go's build cache makes a rebuild after `make clean-test-tools` quick).
# `make test` builds them when `go` is on PATH; without Go the tests that need them skip, saying why.
include manifests/versions.env
# $(call GO_BUILD,module dir,ldflags,package): prints how long the build took (a cold build of KServe
# or kwok takes minutes, a warm one seconds)
GO_BUILD = @start=$$(date +%s); cd $(1) && CGO_ENABLED=0 nice -n 10 $(GO) build -trimpath -ldflags '-s -w $(2)' -o $@ $(3) \
  && echo "built $(notdir $@) in $$(( $$(date +%s) - start )) s"
K8S_VERSION_PARTS := $(subst ., ,$(KUBERNETES_VERSION))
# what Kubernetes' hack/lib/version.sh stamps (k8s.io/kubernetes v1.34.0); helm's Makefile does the
# same for its own version and its default Capabilities.KubeVersion (helm.sh/helm/v3 v3.19.0)
K8S_LDFLAGS := $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
  -X $(pkg).gitVersion=v$(KUBERNETES_VERSION) -X $(pkg).gitMajor=$(word 1,$(K8S_VERSION_PARTS)) \
  -X $(pkg).gitMinor=$(word 2,$(K8S_VERSION_PARTS)) -X $(pkg).gitTreeState=clean)
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
  $(foreach pkg,helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules,\
  -X $(pkg).k8sVersionMajor=$(word 1,$(K8S_VERSION_PARTS)) -X $(pkg).k8sVersionMinor=$(word 2,$(K8S_VERSION_PARTS)))
# the reconcilers the canary tests run against the control plane (tests/fixtures/reconcilers.py):
# KServe's manager, Knative Serving's controller/webhook/autoscaler, kube-scheduler and kwok
RECONCILER_TOOLS := $(CURDIR)/bin/kserve-manager-$(KSERVE_VERSION) \
  $(foreach c,controller webhook autoscaler,$(CURDIR)/bin/knative-$(c)-$(KNATIVE_SERVING_VERSION)) \
  $(CURDIR)/bin/kube-scheduler-v$(KUBERNETES_VERSION) $(CURDIR)/bin/kwok-$(KWOK_VERSION)
TEST_TOOLS := $(CURDIR)/bin/etcd-$(ETCD_VERSION) $(CURDIR)/bin/kube-apiserver-v$(KUBERNETES_VERSION) \
  $(CURDIR)/bin/kube-controller-manager-v$(KUBERNETES_VERSION) $(CURDIR)/bin/kubectl-v$(KUBERNETES_VERSION) \
  $(CURDIR)/bin/helm-$(HELM_VERSION) $(RECONCILER_TOOLS)

$(CURDIR)/bin/etcd-$(ETCD_VERSION): tools/etcd/go.mod tools/etcd/go.sum
	$(call GO_BUILD,tools/etcd,,go.etcd.io/etcd/server/v3)

$(CURDIR)/bin/kube-%-v$(KUBERNETES_VERSION): tools/kubernetes/go.mod tools/kubernetes/go.sum
	$(call GO_BUILD,tools/kubernetes,$(K8S_LDFLAGS),k8s.io/kubernetes/cmd/kube-$*)

$(CURDIR)/bin/kubectl-v$(KUBERNETES_VERSION): tools/kubernetes/go.mod tools/kubernetes/go.sum
	$(call GO_BUILD,tools/kubernetes,$(K8S_LDFLAGS),k8s.io/kubernetes/cmd/kubectl)

$(CURDIR)/bin/helm-$(HELM_VERSION): tools/helm/go.mod tools/helm/go.sum
	$(call GO_BUILD,tools/helm,$(HELM_LDFLAGS),helm.sh/helm/v3/cmd/helm)

$(CURDIR)/bin/kserve-manager-$(KSERVE_VERSION): tools/kserve/go.mod tools/kserve/go.sum
	$(call GO_BUILD,tools/kserve,,github.com/kserve/kserve/cmd/manager)

# knative.dev/serving v0.48.1 is the Go module of the knative-v1.21.1 release (tools/knative/go.mod)
$(CURDIR)/bin/knative-%-$(KNATIVE_SERVING_VERSION): tools/knative/go.mod tools/knative/go.sum
	$(call GO_BUILD,tools/knative,,knative.dev/serving/cmd/$*)

# the version stamp kwok's hack/releases.sh sets (sigs.k8s.io/kwok v0.7.0)
$(CURDIR)/bin/kwok-$(KWOK_VERSION): tools/kwok/go.mod tools/kwok/go.sum
	$(call GO_BUILD,tools/kwok,-X sigs.k8s.io/kwok/pkg/consts.Version=$(KWOK_VERSION:v%=%),sigs.k8s.io/kwok/cmd/kwok)

.PHONY: test-tools
test-tools: ## Build the control plane (etcd, kube-apiserver, kube-controller-manager, kubectl, helm) and the reconcilers (KServe, Knative, kube-scheduler, kwok) into bin/ from tools/ (needs Go)
	@if [ -z "$(GO)" ]; then echo "error: go is not on PATH; the tests that need a control plane will skip" >&2; exit 2; fi
	@$(MAKE) --no-print-directory $(TEST_TOOLS)

.PHONY: clean-test-tools
clean-test-tools: ## Remove the built test tools from bin/ (Go's build cache keeps a rebuild quick)
	rm -f $(TEST_TOOLS)
	rm -rf $(KAFKA_JARS)

# The Kafka broker the streaming tests start (tests/fixtures/kafka.py): Apache Kafka's jars from Maven
# Central at KAFKA_VERSION (tools/kafka/pom.xml), run on the installed Java 17 as one KRaft node. A file
# target (bin/kafka-<version>/.complete), so a second run fetches nothing; ~/.m2 caches the downloads.
KAFKA_JARS := $(CURDIR)/bin/kafka-$(KAFKA_VERSION)

$(KAFKA_JARS)/.complete: tools/kafka/pom.xml manifests/versions.env
	@grep -q "<kafka.version>$(KAFKA_VERSION)</kafka.version>" tools/kafka/pom.xml || \
	  { echo "error: tools/kafka/pom.xml does not pin KAFKA_VERSION=$(KAFKA_VERSION)" >&2; exit 2; }
	rm -rf $(KAFKA_JARS)
	cd tools/kafka && nice -n 10 $(MVN) -q -B dependency:copy-dependencies -DoutputDirectory=$(KAFKA_JARS)
	@touch $@

.PHONY: test-kafka
test-kafka: ## Fetch the Kafka broker jars the streaming tests run (bin/kafka-<version>/, needs Maven and Java 17)
	@if [ -z "$(MVN)" ]; then echo "error: mvn is not on PATH; the streaming tests will skip" >&2; exit 2; fi
	@$(MAKE) --no-print-directory $(KAFKA_JARS)/.complete

MLSERVER_VENV := $(CURDIR)/bench/.venvs/mlserver
# the comparison server, in its own venv so its pins never touch ours (same scikit-learn as uv.lock)
$(MLSERVER_VENV)/bin/mlserver:
	python3 -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install --quiet "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "scikit-learn==1.9.1" "pandas<3.1"

##@ Benchmarks

.PHONY: bench-serving
bench-serving: setup $(MLSERVER_VENV)/bin/mlserver ## Both engines (onnx, sklearn), lean + kserve.ModelServer vs MLServer 1.7.1 (stock + batching) vs mlflow serve, pinned cores, plus sink -> bench/results/serving.{json,md} (BENCH_QUICK=1: a 5-min check)
	$(PY) bench/serving_bench.py

.PHONY: bench-sink
bench-sink: setup ## Sink ingest (events/s, p99 at ~5k/s), RSS under unpaired floods vs the chart limit, a 1 h window over 30 days of partitions -> bench/results/sink.{json,md}
	$(PY) bench/sink_bench.py

.PHONY: bench-batch
bench-batch: $(VENV)/.synced ## Batch scoring on 2M-row Parquet/CSV: compiled vs scikit-learn engine vs the previous code (git archive), one core per run -> bench/results/batch.{json,md}
	$(PY) bench/batch_bench.py

.PHONY: bench-train
bench-train: $(VENV)/.synced ## The train step's peak RSS and CPU seconds per estimator on 50k rows (sizes its requests) -> bench/results/train.{json,md}
	$(PY) bench/train_resources.py

.PHONY: bench-drift
bench-drift: setup ## Stock Evidently DataDriftPreset vs `mlstack drift` (exact, every row), 100k and 1M rows x 30 columns, plus 10M streamed -> bench/results/drift.{json,md}
	$(PY) bench/drift_bench.py

.PHONY: bench-stream
bench-stream: setup $(if $(MVN),test-kafka) ## mlstack stream exactly/at least once, batch sizes, p50/p99 at 5k events/s, failover after SIGKILL, vs mlstack serve -> bench/results/stream.{json,md}
	$(PY) bench/stream_bench.py

.PHONY: bench
bench: bench-serving bench-sink bench-drift bench-batch bench-stream ## Run every benchmark, then write bench/results/summary.md
	$(PY) bench/summarize.py

##@ Cluster

# every third-party version the cluster uses (KIND_VERSION, KIND_NODE_IMAGE, KSERVE_VERSION, ...)
include manifests/versions.env
BIN := $(CURDIR)/bin
OS := $(shell uname -s | tr '[:upper:]' '[:lower:]')
ARCH := $(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
KIND := $(BIN)/kind
HELM := $(BIN)/helm
KUBECTL ?= kubectl
CONTAINER_TOOL ?= docker
CLUSTER_NAME ?= mlstack
NAMESPACE ?= mlstack
RELEASE ?= mlstack
VALUES ?= helm/mlstack/values-kind.yaml
IMAGE_TAG ?= dev
REGISTRY ?= localhost:$(REGISTRY_PORT)
REGISTRY_NAME := kind-registry
# one image for every component (Dockerfile at the root); the chart sets each container's command
IMAGE := mlstack
RETRY := manifests/scripts/retry.sh
# waits until an admission webhook serves (caBundle + a ready endpoint), else stops saying what is missing
WAIT_WEBHOOK := manifests/scripts/wait-webhook.sh
WEBHOOK_DEADLINE ?= 600
# KServe's s3-endpoint annotation (host:port, no scheme): KFP's SeaweedFS, as in values-kind.yaml
KIND_S3_ENDPOINT := seaweedfs.kubeflow.svc.cluster.local:8333
PLATFORM := manifests/platform
WAIT := --timeout=600s

$(KIND):
	@mkdir -p $(BIN)
	curl -fsSLo $@ https://kind.sigs.k8s.io/dl/$(KIND_VERSION)/kind-$(OS)-$(ARCH) && chmod +x $@

$(HELM):
	@mkdir -p $(BIN)
	curl -fsSL https://get.helm.sh/helm-$(HELM_VERSION)-$(OS)-$(ARCH).tar.gz | tar -xz -C $(BIN) --strip-components=1 $(OS)-$(ARCH)/helm

.PHONY: kind-up
kind-up: $(KIND) ## Create the kind cluster (1 control plane + 1 worker) and local registry, then install the platform
	@$(CONTAINER_TOOL) inspect -f '{{.State.Running}}' $(REGISTRY_NAME) 2>/dev/null | grep -q true || \
	  $(CONTAINER_TOOL) run -d --restart=always -p 127.0.0.1:$(REGISTRY_PORT):5000 --network bridge --name $(REGISTRY_NAME) $(REGISTRY_IMAGE)
	@if $(KIND) get clusters 2>/dev/null | grep -qx $(CLUSTER_NAME); then echo "kind cluster $(CLUSTER_NAME) already exists"; \
	else $(KIND) create cluster --name $(CLUSTER_NAME) --image $(KIND_NODE_IMAGE) --config manifests/kind-config.yaml --wait 180s; fi
	@# point containerd on every node at the local registry (kind's documented local-registry recipe)
	@for node in $$($(KIND) get nodes --name $(CLUSTER_NAME)); do \
	  $(CONTAINER_TOOL) exec $$node mkdir -p /etc/containerd/certs.d/localhost:$(REGISTRY_PORT); \
	  printf '[host."http://$(REGISTRY_NAME):5000"]\n' | $(CONTAINER_TOOL) exec -i $$node cp /dev/stdin /etc/containerd/certs.d/localhost:$(REGISTRY_PORT)/hosts.toml; \
	done
	@$(CONTAINER_TOOL) network connect kind $(REGISTRY_NAME) 2>/dev/null || true
	$(KUBECTL) config use-context kind-$(CLUSTER_NAME)
	$(MAKE) platform

.PHONY: kind-down
kind-down: $(KIND) ## Delete the kind cluster and the local registry
	$(KIND) delete cluster --name $(CLUSTER_NAME)
	-$(CONTAINER_TOOL) rm -f $(REGISTRY_NAME)

.PHONY: platform
platform: $(HELM) ## Install cert-manager, Knative Serving + Kourier, KServe (Serverless), KFP, kube-prometheus-stack and a one-node Kafka onto the current context
	$(KUBECTL) apply --server-side -k $(PLATFORM)/cert-manager
	$(KUBECTL) -n cert-manager wait --for=condition=Available deployment --all $(WAIT)
	@# Knative: the first pass creates the CRDs and the webhook; objects of a CRD not yet established
	@# and, on a re-run, the ConfigMaps its config webhook validates are refused until it serves
	$(KUBECTL) apply --server-side -k $(PLATFORM)/knative-serving || echo "knative-serving: first pass incomplete; applying again once its webhook serves"
	$(WAIT_WEBHOOK) knative-serving webhook $(WEBHOOK_DEADLINE) $(KUBECTL)
	$(RETRY) 3 10 $(KUBECTL) apply --server-side -k $(PLATFORM)/knative-serving
	$(KUBECTL) -n knative-serving wait --for=condition=Available deployment --all $(WAIT)
	$(KUBECTL) apply --server-side -k $(PLATFORM)/kourier
	$(KUBECTL) -n kourier-system wait --for=condition=Available deployment --all $(WAIT)
	@# KServe: our Namespace (the release file has none), CRDs and controllers; the certificate
	@# cert-manager issues for the webhooks can lag, so the apply is retried
	$(RETRY) 5 15 $(KUBECTL) apply --server-side --force-conflicts -k $(PLATFORM)/kserve
	$(KUBECTL) -n kserve rollout status deployment --timeout=600s
	@# the runtimes are validated by KServe's webhooks, which serve a while after the rollout
	$(WAIT_WEBHOOK) kserve kserve-webhook-server-service $(WEBHOOK_DEADLINE) $(KUBECTL)
	$(WAIT_WEBHOOK) kserve llmisvc-webhook-server-service $(WEBHOOK_DEADLINE) $(KUBECTL)
	$(RETRY) 3 10 $(KUBECTL) apply --server-side --force-conflicts -k $(PLATFORM)/kserve-cluster-resources
	$(KUBECTL) apply --server-side -k $(PLATFORM)/kubeflow-pipelines/cluster-scoped
	$(KUBECTL) wait --for=condition=Established crd/applications.app.k8s.io --timeout=120s
	$(RETRY) 3 15 $(KUBECTL) apply --server-side -k $(PLATFORM)/kubeflow-pipelines
	$(KUBECTL) -n kubeflow wait --for=condition=Available deployment --all --timeout=900s
	$(KUBECTL) create namespace monitoring --dry-run=client -o yaml | $(KUBECTL) apply -f -
	@$(KUBECTL) -n monitoring get secret grafana-admin >/dev/null 2>&1 || \
	  $(KUBECTL) -n monitoring create secret generic grafana-admin --from-literal=admin-user=admin \
	    --from-literal=admin-password="$$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
	$(HELM) upgrade --install kube-prometheus-stack oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack \
	  --version $(KUBE_PROMETHEUS_STACK_VERSION) -n monitoring -f $(PLATFORM)/monitoring/values.yaml --wait --timeout 15m
	$(KUBECTL) apply -k $(PLATFORM)/kafka
	$(KUBECTL) -n kafka rollout status statefulset/kafka $(WAIT)
	$(KUBECTL) apply -k $(PLATFORM)/namespace

.PHONY: images
images: ## Build the one mlstack image (every component; the chart sets each command) for this machine's platform
	$(CONTAINER_TOOL) build -f Dockerfile -t $(REGISTRY)/$(IMAGE):$(IMAGE_TAG) .

.PHONY: kind-load
kind-load: ## Push the image to the local registry the kind nodes pull from (no `kind load`: see docs/cluster.md)
	$(CONTAINER_TOOL) push $(REGISTRY)/$(IMAGE):$(IMAGE_TAG)
	@curl -fsS -o /dev/null http://$(REGISTRY)/v2/$(IMAGE)/manifests/$(IMAGE_TAG) \
	  -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json' \
	  && echo "$(REGISTRY)/$(IMAGE):$(IMAGE_TAG) is in the local registry; the nodes pull it from there"

.PHONY: arm64-wheels
arm64-wheels: $(UV) ## Ask PyPI for every locked runtime wheel for linux/arm64 (binary-only except what the Dockerfile builds)
	@mkdir -p build/arm64
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --quiet -o build/arm64/requirements.txt
	$(UV) pip compile build/arm64/requirements.txt --python-platform aarch64-manylinux_2_28 --python-version 3.11 \
	  --only-binary :all: --no-binary psutil --no-binary kfp-server-api --quiet -o build/arm64/resolved.txt
	@echo "every locked runtime package resolves for linux/arm64 (psutil, kfp-server-api from sdist: see tests/unit/test_arm64_wheels.py)"

.PHONY: deploy
deploy: $(HELM) ## helm upgrade --install the mlstack chart (VALUES=helm/mlstack/values-kind.yaml by default)
	$(KUBECTL) apply -k $(PLATFORM)/namespace
	@if [ "$(VALUES)" = "helm/mlstack/values-kind.yaml" ]; then manifests/scripts/kind-secrets.sh $(NAMESPACE) $(KIND_S3_ENDPOINT) $(KUBECTL); fi
	$(HELM) upgrade --install $(RELEASE) helm/mlstack -n $(NAMESPACE) -f $(VALUES) --wait --timeout 15m

.PHONY: undeploy
undeploy: $(HELM) ## Uninstall the mlstack release (keeps the Evidently workspace, the PostgreSQL and sink volumes and Secrets)
	$(HELM) uninstall $(RELEASE) -n $(NAMESPACE) --wait

##@ Operations

.PHONY: pipeline-ui
pipeline-ui: ## Port-forward the Kubeflow Pipelines UI to http://localhost:8081
	$(KUBECTL) -n kubeflow port-forward svc/ml-pipeline-ui 8081:80

.PHONY: mlflow-ui
mlflow-ui: ## Port-forward MLflow to http://localhost:5000 (user admin, password in Secret mlstack-mlflow-auth)
	$(KUBECTL) -n $(NAMESPACE) port-forward svc/$(RELEASE)-mlflow 5000:5000

.PHONY: grafana
grafana: ## Port-forward Grafana to http://localhost:3000 (password in Secret monitoring/grafana-admin)
	$(KUBECTL) -n monitoring port-forward svc/grafana 3000:80

.PHONY: evidently-ui
evidently-ui: ## Port-forward the Evidently UI to http://localhost:8000
	$(KUBECTL) -n $(NAMESPACE) port-forward svc/$(RELEASE)-evidently 8000:8000

.PHONY: evidently-ui-local
evidently-ui-local: $(VENV)/.synced ## Evidently UI on the local drift workspace (MLSTACK_HOME/evidently) at http://127.0.0.1:8000
	$(VENV)/bin/evidently ui --workspace $(MLSTACK_HOME)/evidently --host 127.0.0.1 --port 8000

.PHONY: e2e
e2e: $(VENV)/.synced ## Run the end-to-end story against the current kind cluster (skipped when none is reachable)
	@mkdir -p $(BIN) && ln -sf $(VENV)/bin/kubectl-model $(BIN)/kubectl-model
	PATH="$(VENV)/bin:$(BIN):$$PATH" $(PY) -m pytest -m e2e tests/e2e -v -rs $(PYTEST_ARGS)
