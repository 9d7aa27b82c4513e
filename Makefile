# mlstack — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export MLSTACK_HOME ?= $(CURDIR)/.mlstack
# Python caches compiled modules (.pyc) on first import. With PYTHONDONTWRITEBYTECODE=1 (set on some
# machines and images) every process compiles mlflow, pandas, ... from source again: mlflow.sklearn
# imported in 10 s instead of 2.2 s here. Compiling the whole venv at install took 33 s; caching
# what is actually imported costs far less, so make's commands let Python write its cache.
unexport PYTHONDONTWRITEBYTECODE
UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bin/uv
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# Debian packages the tests start for real (promtool, Pushgateway, PostgreSQL, headless Chromium, load generators)
APT_PACKAGES := prometheus prometheus-pushgateway postgresql chromium wrk hey
PYTEST_ARGS ?=

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
setup: $(VENV)/.synced system-deps ## Create .venv from uv.lock, install Debian test packages and the kubectl-model plugin
	@mkdir -p bin && ln -sf $(VENV)/bin/kubectl-model bin/kubectl-model
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
test: setup ## Run unit and integration tests (installs everything it needs first)
	$(PY) -m pytest -m "not e2e" --durations=25 $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.synced ## Run only the unit tests (fast, no servers)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

.PHONY: test-canary
test-canary: $(VENV)/.synced ## Run the canary area's tests (state machine, analysis, kubectl-model, deploy step)
	$(PY) -m pytest tests/unit/test_canary_state.py tests/unit/test_canary_analysis.py tests/integration/test_kubectl_model.py tests/integration/test_canary_analyze.py tests/integration/test_deploy_component.py $(PYTEST_ARGS)

.PHONY: lint
lint: $(VENV)/.synced ## Lint, format-check, check the import floors (import-linter) and type-check (mypy)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: $(VENV)/.synced ## Format the Python code (ruff)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: demo
demo: setup ## Run the whole loop on this machine, no cluster (report: MLSTACK_HOME/demo/report.html)
	$(VENV)/bin/mlstack demo $(DEMO_ARGS)

.PHONY: clean
clean: ## Remove local state (MLSTACK_HOME) and build outputs (keeps .venv)
	rm -rf $(MLSTACK_HOME) build/

MLSERVER_VENV := $(CURDIR)/bench/.venvs/mlserver
# the comparison server, in its own venv so its pins never touch ours (same scikit-learn as uv.lock)
$(MLSERVER_VENV)/bin/mlserver:
	python3 -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install --quiet "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "scikit-learn==1.9.1" "pandas<3.1"

##@ Benchmarks

.PHONY: bench-serving
bench-serving: setup $(MLSERVER_VENV)/bin/mlserver ## Predictor vs MLServer 1.7 vs mlflow serve vs uvicorn floor, plus sink ingest -> bench/results/serving.{json,md}
	$(PY) bench/serving_bench.py

.PHONY: bench-batch
bench-batch: $(VENV)/.synced ## Batch scoring peak RSS and rows/s on 2M-row Parquet and CSV inputs -> bench/results/batch.{json,md}
	$(PY) bench/batch_bench.py

.PHONY: bench-drift
bench-drift: setup ## Stock Evidently DataDriftPreset vs `mlstack drift`, 100k and 1M rows x 30 columns -> bench/results/drift.{json,md}
	$(PY) bench/drift_bench.py

.PHONY: bench
bench: bench-serving bench-drift bench-batch ## Run every benchmark, then write bench/results/summary.md
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
IMAGES := components serving monitoring
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
platform: $(HELM) ## Install cert-manager, Knative Serving + Kourier, KServe (Serverless), KFP and kube-prometheus-stack onto the current context
	$(KUBECTL) apply --server-side -k $(PLATFORM)/cert-manager
	$(KUBECTL) -n cert-manager wait --for=condition=Available deployment --all $(WAIT)
	@# CRDs and the resources using them in one apply race; the second pass finds the CRDs established
	$(KUBECTL) apply --server-side -k $(PLATFORM)/knative-serving || (sleep 15 && $(KUBECTL) apply --server-side -k $(PLATFORM)/knative-serving)
	$(KUBECTL) -n knative-serving wait --for=condition=Available deployment --all $(WAIT)
	$(KUBECTL) apply --server-side -k $(PLATFORM)/kourier
	$(KUBECTL) -n kourier-system wait --for=condition=Available deployment --all $(WAIT)
	@# KServe's webhook needs its cert-manager certificate before the cluster resources apply
	$(KUBECTL) apply --server-side --force-conflicts -k $(PLATFORM)/kserve || (sleep 30 && $(KUBECTL) apply --server-side --force-conflicts -k $(PLATFORM)/kserve)
	$(KUBECTL) -n kserve wait --for=condition=Available deployment --all $(WAIT)
	$(KUBECTL) apply --server-side -k $(PLATFORM)/kubeflow-pipelines/cluster-scoped
	$(KUBECTL) wait --for=condition=Established crd/applications.app.k8s.io --timeout=120s
	$(KUBECTL) apply --server-side -k $(PLATFORM)/kubeflow-pipelines
	$(KUBECTL) -n kubeflow wait --for=condition=Available deployment --all --timeout=900s
	$(KUBECTL) create namespace monitoring --dry-run=client -o yaml | $(KUBECTL) apply -f -
	@$(KUBECTL) -n monitoring get secret grafana-admin >/dev/null 2>&1 || \
	  $(KUBECTL) -n monitoring create secret generic grafana-admin --from-literal=admin-user=admin \
	    --from-literal=admin-password="$$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
	$(HELM) upgrade --install kube-prometheus-stack oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack \
	  --version $(KUBE_PROMETHEUS_STACK_VERSION) -n monitoring -f $(PLATFORM)/monitoring/values.yaml --wait --timeout 15m
	$(KUBECTL) apply -k $(PLATFORM)/namespace

.PHONY: images
images: ## Build the mlstack-components, mlstack-serving and mlstack-monitoring images (needs docker)
	@for image in $(IMAGES); do \
	  echo "building $(REGISTRY)/mlstack-$$image:$(IMAGE_TAG)"; \
	  $(CONTAINER_TOOL) build -f $$image/Dockerfile -t $(REGISTRY)/mlstack-$$image:$(IMAGE_TAG) . || exit 1; \
	done

.PHONY: kind-load
kind-load: $(KIND) ## Push the images to the local registry and load them onto the kind nodes
	@for image in $(IMAGES); do \
	  $(CONTAINER_TOOL) push $(REGISTRY)/mlstack-$$image:$(IMAGE_TAG) || exit 1; \
	  $(KIND) load docker-image --name $(CLUSTER_NAME) $(REGISTRY)/mlstack-$$image:$(IMAGE_TAG) || exit 1; \
	done

.PHONY: deploy
deploy: $(HELM) ## helm upgrade --install the mlstack chart (VALUES=helm/mlstack/values-kind.yaml by default)
	$(KUBECTL) apply -k $(PLATFORM)/namespace
	@if [ "$(VALUES)" = "helm/mlstack/values-kind.yaml" ]; then manifests/scripts/kind-secrets.sh $(NAMESPACE) $(KIND_S3_ENDPOINT) $(KUBECTL); fi
	$(HELM) upgrade --install $(RELEASE) helm/mlstack -n $(NAMESPACE) -f $(VALUES) --wait --timeout 15m

.PHONY: undeploy
undeploy: $(HELM) ## Uninstall the mlstack release (keeps the Evidently workspace volume and Secrets)
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
e2e: $(VENV)/.synced ## Run the end-to-end tests against the current cluster (skipped when none is reachable)
	$(PY) -m pytest -m e2e tests/e2e -v -rs $(PYTEST_ARGS)
