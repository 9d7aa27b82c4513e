"""Typed settings: one place defines every default.

Values come from (highest first) ``MLSTACK_*`` environment variables, the YAML file named by
``MLSTACK_CONFIG`` (or passed explicitly), and the defaults below. Nested values use ``__``:
``MLSTACK_TRAINING__SEED=7``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mlstack.core.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A configuration file or value that cannot be used."""


class GateConfig(BaseModel):
    """Quality gates: absolute floors/ceilings and the allowed regression versus the champion."""

    minimum: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.70, "pr_auc": 0.25})
    maximum: dict[str, float] = Field(default_factory=lambda: {"log_loss": 0.60, "brier": 0.20})
    # metric -> largest allowed drop versus the champion on the same evaluation set
    max_regression: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.01, "pr_auc": 0.02})


class CompileConfig(BaseModel):
    """The compiled serving artifact: exported at registration, attached only within these limits."""

    enabled: bool = True
    # on the evaluation set, ONNX vs the scikit-learn pipeline: predictions that change at the
    # model's threshold, and the largest absolute difference of the positive-class probability
    max_label_flips: int = Field(0, ge=0)
    max_abs_diff: float = Field(1e-6, ge=0.0)


class TrainingConfig(BaseModel):
    """What to train and how; everything that changes the model is here and in the config hash."""

    model_name: str = "loan-default"
    estimator: Literal["logistic_regression", "hist_gradient_boosting", "random_forest"] = (
        "logistic_regression"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    slice_feature: str | None = None
    reference_rows: int = Field(5000, ge=100)
    validation_tolerance: float = Field(0.01, ge=0.0, le=1.0)
    gates: GateConfig = Field(default_factory=GateConfig)
    compile: CompileConfig = Field(default_factory=CompileConfig)


class ServingConfig(BaseModel):
    max_batch_rows: int = Field(1000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    host: str = "127.0.0.1"  # the image sets MLSTACK_SERVING__HOST=0.0.0.0
    port: int = 8080
    workers: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)  # OpenMP/BLAS threads per worker; one row gains nothing from more
    model_dir: str = "/mnt/models"  # where KServe's storage initializer puts the model
    # "lean": our ASGI app speaking KServe's protocols; "kserve": the stock kserve.ModelServer
    server: Literal["lean", "kserve"] = "lean"
    # "auto": the compiled artifact when the version has one that verifies, else scikit-learn
    engine: Literal["auto", "sklearn"] = "auto"
    # adaptive batching (lean server): concurrent requests share one model call of at most
    # batch_max_rows rows, waiting at most batch_max_wait_ms for company. Off by default: measured
    # in bench/results/serving.md (a request waits, and one compiled call costs ~0.02 ms a row)
    batching: bool = False
    batch_max_rows: int = Field(32, ge=1)
    batch_max_wait_ms: float = Field(1.0, ge=0.0, le=1000.0)


class SinkConfig(BaseModel):
    store: str | None = None  # payload-log store (directory or s3:// prefix); default $MLSTACK_HOME/payloads
    host: str = "127.0.0.1"  # the image sets MLSTACK_SINK__HOST=0.0.0.0
    port: int = 8090
    flush_rows: int = Field(5000, ge=1)
    flush_seconds: float = Field(5.0, gt=0)
    wal_dir: str | None = None  # default: $MLSTACK_HOME/sink-wal (a PVC in the cluster)
    pair_timeout_seconds: float = Field(300.0, gt=0)  # then an unpaired event goes to unpaired/
    dedup_hours: float = Field(24.0, gt=0)  # a stored ce-id is refused again for this long, then forgotten
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024)


class DriftConfig(BaseModel):
    """The drift job: pinned methods and thresholds, data minimums, quality and performance limits.

    Numeric features use ``numeric_method``; categorical ones, and numeric ones with at most
    ``low_cardinality`` distinct reference values, use ``categorical_method`` (Evidently's own
    choice for large references), pinned from the reference so sampling can never switch them.
    """

    min_rows: int = Field(1000, ge=1)
    numeric_method: str = "wasserstein"
    numeric_threshold: float = 0.1
    categorical_method: str = "jensenshannon"
    categorical_threshold: float = 0.1
    low_cardinality: int = Field(5, ge=1)
    drift_share: float = Field(0.1, gt=0, le=1)
    prediction_method: str = "wasserstein"
    prediction_threshold: float = 0.1
    # absolute rise of a feature's missing share (vs the reference) that counts as drift
    missing_share_increase: float = Field(0.1, gt=0, le=1)
    # share of rows breaking the data contract in one feature that counts as drift
    max_out_of_contract_share: float = Field(0.05, gt=0, le=1)
    # performance where labels exist: minimum labelled rows, allowed drops versus offline
    min_labeled: int = Field(200, ge=1)
    max_accuracy_drop: float = Field(0.03, gt=0)
    max_roc_auc_drop: float = Field(0.05, gt=0)
    # Evidently runs on this many seeded rows per side: its per-column cost (histograms, plots)
    # dominates at 1M rows; 20k keeps the normed-Wasserstein sampling error ~0.01 vs threshold 0.1
    sample_rows: int = Field(20000, ge=1000)
    sample_seed: int = 0
    schedule: str = "*/15 * * * *"
    window: str = "1h"
    workspace: str | None = None  # default: $MLSTACK_HOME/evidently
    pushgateway: str | None = None  # e.g. http://pushgateway:9091; unset = no push
    push_job: str = "mlstack_drift"


class CanaryConfig(BaseModel):
    """Canary rollout and analysis: traffic share, sample floors, verdict thresholds, data sources."""

    initial_percent: int = Field(10, ge=1, le=100)
    # floors before any promote: logged predictions / requests per variant, labeled rows per variant
    min_samples: int = Field(500, ge=1)
    min_labeled: int = Field(300, ge=1)
    # accuracy: roll back when the canary is significantly worse by at least this much (points/100);
    # promote only when the interval shows it is not worse by more than this
    max_accuracy_drop: float = Field(0.02, gt=0, lt=1)
    max_error_rate: float = Field(0.01, gt=0, lt=1)
    max_p95_latency_ratio: float = Field(1.5, gt=1)
    # Wasserstein distance between the variants' positive-class probability distributions
    max_prediction_shift: float = Field(0.1, gt=0)
    prediction_shift_action: Literal["continue", "rollback"] = "continue"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    # sequential = always-valid mSPRT interval (safe when analyze runs again and again, as the CronJob
    # does); fixed = Newcombe interval, valid for one look only
    method: Literal["sequential", "fixed"] = "sequential"
    prometheus_url: str | None = None  # None: error-rate and latency checks are skipped (reported)
    prometheus_timeout: float = Field(10.0, gt=0)
    # PromQL per revision; $namespace, $revision and $window are substituted. Defaults: Knative
    # queue-proxy metrics (revision_app_request_*). Knative >= 1.19 exports OpenTelemetry names
    # instead; override these three queries to match what your Prometheus scrapes.
    requests_query: str = 'sum(increase(revision_app_request_count{namespace_name="$namespace",revision_name="$revision"}[$window]))'
    errors_query: str = (
        "sum(increase(revision_app_request_count"
        '{namespace_name="$namespace",revision_name="$revision",response_code_class="5xx"}[$window]))'
    )
    p95_query: str = (
        "histogram_quantile(0.95, sum by (le) (rate(revision_app_request_latencies_bucket"
        '{namespace_name="$namespace",revision_name="$revision"}[$window])))'
    )
    p95_query_unit_ms: float = Field(1.0, gt=0)  # multiply the p95 query result by this to get ms
    report_dir: str | None = None  # default: <home>/canary
    schedule: str = "*/10 * * * *"
    # the training pipeline's deploy step: start a canary of each registered version when on
    deploy: bool = False
    inference_service: str | None = None  # default: training.model_name
    namespace: str = "mlstack"


class BatchConfig(BaseModel):
    """Batch scoring: chunk size (memory stays at about one chunk) and the default recurring schedule."""

    chunk_rows: int = Field(50_000, ge=1)
    schedule: str = "0 2 * * *"  # cron, 5 fields (KFP's leading seconds field is added on submit)
    kfp_experiment: str = "batch-scoring"


class Settings(BaseSettings):
    """Every setting of the stack, with its default."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", env_nested_delimiter="__", extra="ignore")

    home: Path = Path(".mlstack")
    tracking_uri: str | None = None  # default: SQLite under home
    registry_uri: str | None = None
    experiment: str = "mlstack"
    s3_endpoint_url: str | None = None
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the file; the file arrives as init kwargs
        return (env_settings, init_settings)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.resolved_home / 'mlflow.db'}"

    @property
    def payload_store(self) -> str:
        return self.sink.store or str(self.resolved_home / "payloads")

    @property
    def artifact_root(self) -> Path:
        return self.resolved_home / "mlartifacts"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from a YAML file (or ``$MLSTACK_CONFIG``), then environment, then overrides."""
    path = path or os.environ.get("MLSTACK_CONFIG")
    data: dict[str, Any] = {}
    if path:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a mapping at the top level")
        data = loaded
    data.update(overrides)
    try:
        return Settings(**data)
    except Exception as exc:  # pydantic ValidationError: make it one readable line per field
        raise ConfigError(f"invalid configuration: {exc}") from exc


@lru_cache(maxsize=1)
def default_settings() -> Settings:
    return load_settings()
