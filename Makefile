# mlstack — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export MLSTACK_HOME ?= $(CURDIR)/.mlstack
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
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.synced ## Run only the unit tests (fast, no servers)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

.PHONY: lint
lint: $(VENV)/.synced ## Lint and format-check the Python code (ruff)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: fmt
fmt: $(VENV)/.synced ## Format the Python code (ruff)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: demo
demo: setup ## Run the whole loop on this machine, no cluster
	$(VENV)/bin/mlstack pipeline run --local

.PHONY: clean
clean: ## Remove local state ($$MLSTACK_HOME) and build outputs (keeps .venv)
	rm -rf $(MLSTACK_HOME) build/

##@ Operations

.PHONY: evidently-ui
evidently-ui: $(VENV)/.synced ## Open the Evidently UI on the local drift workspace (MLSTACK_HOME/evidently), port 8000
	$(VENV)/bin/evidently ui --workspace $(MLSTACK_HOME)/evidently --host 127.0.0.1 --port 8000

##@ Benchmarks

.PHONY: bench-drift
bench-drift: setup ## Stock Evidently DataDriftPreset vs `mlstack drift`, 100k and 1M rows x 30 columns -> bench/results/drift.{json,md}
	$(PY) bench/drift_bench.py
