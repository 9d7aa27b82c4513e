# syntax=docker/dockerfile:1
# mlstack: ONE image for every component. The three former images (components, serving, monitoring)
# installed the same uv.lock and the same packages and differed only in entrypoint and labels, so the
# chart and the KFP components now set each container's command (mlstack, mlflow, evidently,
# kubectl-model, python).
# Build from the repository root:  docker build -t mlstack .   (or `make images`)
# Multi-arch:  docker buildx build --platform linux/amd64,linux/arm64 -t mlstack .
#
# The base is pinned by digest (python:3.11-slim-bookworm, linux/amd64+arm64 index); the digest was
# taken from public references and never pulled on the development machine (no Docker there).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
ARG UV_VERSION=0.13.9

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
# A C compiler in the build stage only: kserve pins psutil<6 and uv.lock takes psutil 5.9.8, which has
# no linux-aarch64 wheel (`make arm64-wheels` resolves every locked wheel for aarch64 and shows psutil
# is the one compiled package without one), so on arm64 uv builds it from its sdist. python:slim ships
# the Python headers; gcc + libc6-dev are what is missing. The runtime stage gets only /opt/venv.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# dependencies first (cached until uv.lock changes), exactly as locked, no dev group; then the project
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY mlstack ./mlstack
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
RUN uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mlstack" \
      org.opencontainers.image.description="mlstack pipeline steps, MLflow server, predictor, payload sink, drift job, Evidently UI, canary analysis" \
      org.opencontainers.image.source="https://github.com/mlstack/mlstack"
# a fixed non-root uid/gid that the chart's securityContext (runAsUser 10001) matches
RUN groupadd --system --gid 10001 mlstack \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin mlstack
COPY --from=build /opt/venv /opt/venv
# HOME and MLSTACK_HOME on /tmp: the pods mount an emptyDir there (readOnlyRootFilesystem);
# the sink's WAL belongs on a volume of its own: set MLSTACK_SINK__WAL_DIR to its mount.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp MLSTACK_HOME=/tmp/mlstack MLSTACK_LOG_FORMAT=json \
    MLSTACK_SERVING__HOST=0.0.0.0 MLSTACK_SINK__HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080 8090
# the chart and the KFP components always set the command; this default is the CLI's help
ENTRYPOINT ["mlstack"]
