"""Typed settings: one place defines every default, one precedence decides every value.

Precedence, highest first: an explicit argument (``load_settings(home=...)``, ``Settings(home=...)``,
a CLI option) > an ``MLSTACK_*`` environment variable > the user's YAML file (``--config`` or
``$MLSTACK_CONFIG``) > the shipped defaults file (``pipelines/config/training.yaml`` for the training
pipeline) > the defaults below. Files overlay each other key by key (nested mappings merge, so one
gate in a user file keeps the others). Nested values use ``__``: ``MLSTACK_TRAINING__SEED=7``.
An unknown key anywhere (file, environment, argument) is an error naming the source and the closest
valid key.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mlstack.core.errors import UsageError
from mlstack.core.stream_settings import StreamConfig
from mlstack.core.strict import reject_unknown, unknown_keys

ENV_PREFIX = "MLSTACK_"


class ConfigError(UsageError, ValueError):
    """A configuration file or value that cannot be used."""


class _Strict(BaseModel):
    """A settings section: an unknown key is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class GateConfig(_Strict):
    """Quality gates: absolute floors/ceilings and the allowed regression versus the champion."""

    minimum: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.70, "pr_auc": 0.25},
        description="Metric -> lowest value a model may score on the evaluation set.",
    )
    maximum: dict[str, float] = Field(
        default_factory=lambda: {"log_loss": 0.60, "brier": 0.20},
        description="Metric -> highest value a model may score on the evaluation set.",
    )
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.01, "pr_auc": 0.02},
        description="Metric -> largest allowed drop versus the champion on the same evaluation set.",
    )


class CompileConfig(_Strict):
    """The compiled serving artifact: exported at registration, attached only within these limits."""

    enabled: bool = Field(True, description="Export the pipeline to ONNX at registration.")
    max_label_flips: int = Field(
        0, ge=0, description="Evaluation rows whose 0/1 answer may differ between ONNX and scikit-learn."
    )
    max_abs_diff: float = Field(
        1e-6, ge=0.0, description="Largest allowed difference of the positive-class probability."
    )


class TrainingConfig(_Strict):
    """What to train and how; everything that changes the model is here and in the config hash."""

    model_name: str = Field("loan-default", description="Registered model name (and InferenceService).")
    estimator: Literal["logistic_regression", "hist_gradient_boosting", "random_forest"] = Field(
        "logistic_regression", description="scikit-learn estimator behind the preprocessing."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the estimator.")
    seed: int = Field(42, description="Seed of the split, the estimator and the reference sample.")
    test_size: float = Field(0.2, gt=0.0, lt=1.0, description="Share of rows held out for evaluation.")
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Positive-class probability at or above which the answer is 1."
    )
    slice_feature: str | None = Field(
        None, description="Feature whose values get their own metrics (default: from the contract)."
    )
    reference_rows: int = Field(
        5000, ge=100, description="Rows of the drift reference snapshot stored with the model."
    )
    validation_tolerance: float = Field(
        0.01, ge=0.0, le=1.0, description="Share of rows that may break the contract before training stops."
    )
    gates: GateConfig = Field(default_factory=GateConfig)
    compile: CompileConfig = Field(default_factory=CompileConfig)


class ServingConfig(_Strict):
    """The predictor (`mlstack serve`): limits, address, server and engine, batching, timeouts."""

    max_batch_rows: int = Field(1000, ge=1, description="Rows one request may hold (more: 400).")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body in bytes (more: 413)."
    )
    host: str = Field("127.0.0.1", description="Bind address (the image sets 0.0.0.0).")
    port: int = Field(8080, ge=1, le=65535, description="HTTP port.")
    workers: int = Field(1, ge=1, description="Server processes.")
    threads: int = Field(
        1, ge=1, description="OpenMP/BLAS threads per worker (one row gains nothing from more)."
    )
    model_dir: str = Field(
        "/mnt/models", description="Model directory or models:/ URI (KServe's storage initializer's path)."
    )
    server: Literal["lean", "kserve"] = Field(
        "lean", description="lean: our ASGI app on KServe's protocols; kserve: the stock kserve.ModelServer."
    )
    engine: Literal["auto", "sklearn"] = Field(
        "auto", description="auto: the compiled artifact when it verifies, else scikit-learn."
    )
    # off by default: measured in bench/results/serving.md
    batching: bool = Field(
        False, description="Lean server: concurrent requests share one model call (adaptive batching)."
    )
    batch_max_rows: int = Field(32, ge=1, description="Rows of one shared model call at most.")
    batch_max_wait_ms: float = Field(
        1.0, ge=0.0, le=1000.0, description="How long a request waits for company (ms)."
    )
    read_timeout_seconds: float = Field(
        30.0, gt=0, description="A request must arrive whole within this (then 408, connection closed)."
    )
    idle_timeout_seconds: int = Field(
        65, ge=1, description="An idle keep-alive connection is closed after this (KServe's default)."
    )


class SinkConfig(_Strict):
    """The payload-log sink (`mlstack sink`): store, address, flushing, pairing, limits, timeouts."""

    store: str | None = Field(
        None, description="Payload-log store, a directory or s3:// prefix (default: <home>/payloads)."
    )
    host: str = Field("127.0.0.1", description="Bind address (the image sets 0.0.0.0).")
    port: int = Field(8090, ge=1, le=65535, description="HTTP port.")
    flush_rows: int = Field(5000, ge=1, description="Write a Parquet file every N paired rows ...")
    flush_seconds: float = Field(5.0, gt=0, description="... or every N seconds, whichever first.")
    wal_dir: str | None = Field(
        None, description="Write-ahead log directory (default: <home>/sink-wal; a PVC in the cluster)."
    )
    pair_timeout_seconds: float = Field(
        300.0, gt=0, description="A half without its partner after this goes to unpaired/."
    )
    dedup_hours: float = Field(
        24.0, gt=0, description="A stored ce-id is refused again for this long, then forgotten."
    )
    max_dedup_ids: int = Field(
        1_000_000,
        ge=1000,
        description="Stored ce-ids remembered at most (~300 B each with its origin); the oldest go first.",
    )
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest event body (more: 413).")
    max_pending_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Bytes of events held in memory (unpaired halves, pairs before a flush; more: 503).",
    )
    max_pending_events: int = Field(
        200_000, ge=1, description="Events held in memory at most (more: 503 + Retry-After)."
    )
    early_label_seconds: float = Field(
        600.0, ge=0, description="A label for an id not logged yet is held this long for its pair."
    )
    max_early_labels: int = Field(100_000, ge=0, description="Labels held for their pair at most.")
    contract_wait_seconds: float = Field(
        30.0, ge=0, description="A pair whose contract is being looked up waits this long, then is written."
    )
    max_event_age_hours: float = Field(
        168.0, gt=0, description="A ce-time older than this is replaced by the receive time."
    )
    max_future_seconds: float = Field(
        300.0, ge=0, description="A ce-time later than this is replaced by the receive time."
    )
    contract_retry_seconds: float = Field(
        60.0, ge=0, description="How long a registry miss for a model's contract is remembered."
    )
    read_timeout_seconds: float = Field(
        30.0, gt=0, description="An event must arrive whole within this (then 408, connection closed)."
    )
    idle_timeout_seconds: int = Field(
        5, ge=1, description="An idle keep-alive connection is closed after this (uvicorn's default)."
    )
    compact_min_age_hours: float = Field(
        2.0, ge=0, description="`mlstack payloads compact` merges partitions whose hour ended this long ago."
    )


class DriftConfig(_Strict):
    """The drift job: pinned methods and thresholds, data minimums, quality and performance limits.

    Numeric features use ``numeric_method``; categorical ones, and numeric ones with at most
    ``low_cardinality`` distinct reference values, use ``categorical_method`` (Evidently's own
    choice for large references), pinned from the reference so the window can never switch them.
    The statistics use every row of both sides (no sampling).
    """

    min_rows: int = Field(
        1000, ge=1, description="Fewer rows in the window or the reference: insufficient_data, no verdict."
    )
    numeric_method: str = Field("wasserstein", description="Evidently drift method of numeric features.")
    numeric_threshold: float = Field(0.1, description="Score at or above which a numeric feature drifted.")
    categorical_method: str = Field(
        "jensenshannon", description="Evidently drift method of categorical and low-cardinality features."
    )
    categorical_threshold: float = Field(
        0.1, description="Score at or above which a categorical feature drifted."
    )
    low_cardinality: int = Field(
        5,
        ge=1,
        description="A numeric feature with at most this many reference values counts as categorical.",
    )
    drift_share: float = Field(
        0.1, gt=0, le=1, description="Share of drifted features at or above which the data drifted."
    )
    prediction_method: str = Field("wasserstein", description="Drift method of the model's probability.")
    prediction_threshold: float = Field(0.1, description="Score at or above which the predictions drifted.")
    missing_share_increase: float = Field(
        0.1, gt=0, le=1, description="Rise of a feature's missing share versus the reference that is drift."
    )
    max_out_of_contract_share: float = Field(
        0.05, gt=0, le=1, description="Share of rows breaking the contract in one feature that is drift."
    )
    min_labeled: int = Field(200, ge=1, description="Labelled rows needed to judge online performance.")
    max_accuracy_drop: float = Field(0.03, gt=0, description="Allowed online accuracy drop versus offline.")
    max_roc_auc_drop: float = Field(0.05, gt=0, description="Allowed online ROC AUC drop versus offline.")
    schedule: str = Field("*/15 * * * *", description="Cron of the drift CronJob.")
    window: str = Field("1h", description="Payload-log window ending now, e.g. 15m, 1h, 2d.")
    workspace: str | None = Field(
        None, description="Evidently workspace, a directory or s3:// (default: <home>/evidently)."
    )
    pushgateway: str | None = Field(
        None, description="Pushgateway URL, e.g. http://pushgateway:9091 (unset: no push)."
    )
    push_job: str = Field("mlstack_drift", description="Pushgateway job name of the drift series.")


# the revision a queue-proxy series belongs to: its scrape target's target_info (OTel resource attributes)
_ON_REVISION = (
    " * on (job, instance) group_left (kn_revision_name)"
    ' target_info{k8s_namespace_name="$namespace",kn_revision_name="$revision"}'
)


class CanaryConfig(_Strict):
    """Canary rollout and analysis: traffic share, sample floors, verdict thresholds, data sources."""

    initial_percent: int = Field(10, ge=1, le=100, description="Traffic % a new canary starts with.")
    min_samples: int = Field(
        500, ge=1, description="Logged predictions (and requests) per variant before any promote."
    )
    min_labeled: int = Field(300, ge=1, description="Labelled rows per variant before any promote.")
    max_accuracy_drop: float = Field(
        0.02,
        gt=0,
        lt=1,
        description="Roll back when the canary is surely worse by this much; promote when surely not.",
    )
    max_error_rate: float = Field(0.01, gt=0, lt=1, description="Largest canary 5xx rate.")
    max_p95_latency_ratio: float = Field(
        1.5, gt=1, description="Largest canary p95 latency as a multiple of the primary's."
    )
    max_prediction_shift: float = Field(
        0.1, gt=0, description="Wasserstein distance of the variants' probabilities that counts as a shift."
    )
    prediction_shift_action: Literal["continue", "rollback"] = Field(
        "continue", description="What a prediction shift does: continue (reported) or rollback."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence of the accuracy interval.")
    method: Literal["sequential", "fixed"] = Field(
        "sequential",
        description="sequential: always-valid mSPRT interval (safe when run again and again); fixed: one look.",
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus URL (unset: error-rate and latency checks are skipped, reported)."
    )
    prometheus_timeout: float = Field(10.0, gt=0, description="Seconds one Prometheus query may take.")
    # the vocabulary of Knative 1.21's queue-proxy (config-observability request-metrics-protocol:
    # prometheus): kn_serving_invocation_duration_seconds (labels: http_response_status_code only); the
    # revision's name and namespace exist only on the target's target_info series, hence the join.
    # Upstream files for every name: monitoring/README.md. The chart passes these defaults through.
    requests_query: str = Field(
        "sum(increase(kn_serving_invocation_duration_seconds_count[$window])" + _ON_REVISION + ")",
        description="PromQL: requests of one revision ($namespace, $revision, $window substituted).",
    )
    errors_query: str = Field(
        'sum(increase(kn_serving_invocation_duration_seconds_count{http_response_status_code=~"5.."}[$window])'
        + _ON_REVISION
        + ")",
        description="PromQL: 5xx answers of one revision.",
    )
    p95_query: str = Field(
        "histogram_quantile(0.95, sum by (le) (rate(kn_serving_invocation_duration_seconds_bucket[$window])"
        + _ON_REVISION
        + "))",
        description="PromQL: p95 latency of one revision.",
    )
    p95_query_unit_ms: float = Field(
        1000.0, gt=0, description="Milliseconds per unit of the p95 query's answer (seconds: 1000)."
    )
    report_dir: str | None = Field(None, description="Where A/B reports go (default: <home>/canary).")
    schedule: str = Field("*/10 * * * *", description="Cron of the canary-analysis CronJob.")
    deploy: bool = Field(
        False, description="The training pipeline's deploy step starts a canary of each registered version."
    )
    inference_service: str | None = Field(
        None, description="InferenceService the deploy step serves (default: training.model_name)."
    )
    namespace: str = Field("mlstack", description="Namespace of that InferenceService.")


class BatchConfig(_Strict):
    """Batch scoring: chunk size (memory stays at about one chunk) and the default recurring schedule."""

    chunk_rows: int = Field(50_000, ge=1, description="Rows scored at a time (memory is about one chunk).")
    schedule: str = Field(
        "0 2 * * *", description="Cron, 5 fields, of `mlstack batch submit` (KFP's seconds field is added)."
    )
    kfp_experiment: str = Field("batch-scoring", description="KFP experiment of batch runs.")


class RolloutConfig(_Strict):
    """The rollout controller (`mlstack rollout controller`): MLflow aliases drive InferenceServices."""

    inference_services: list[str] = Field(
        default_factory=list,
        description="InferenceServices the controller manages (JSON list); the chart fills in serving.models.",
    )
    namespace: str | None = Field(
        None, description="Their namespace (default: the pod's, else the kubeconfig context's)."
    )
    host: str = Field("127.0.0.1", description="Bind address of the webhook receiver (the chart: 0.0.0.0).")
    port: int = Field(8095, ge=1, le=65535, description="Port of the webhook receiver, /metrics and health.")
    resync_seconds: float = Field(
        60.0, gt=0, description="Full reconcile of every model from the registry (the truth) this often."
    )
    retry_seconds: float = Field(
        5.0, gt=0, description="Look again this soon after a move, or while KServe has not caught up."
    )
    grace_seconds: float = Field(
        30.0,
        ge=0,
        description="A spec change by another client (kubectl model) younger than this is not undone yet.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC secret MLflow signs deliveries with (required to run the controller)."
    )
    webhook_url: str | None = Field(
        None, description="URL MLflow should call; when set, the leader registers the webhook in MLflow."
    )
    webhook_name: str = Field("mlstack-rollout-controller", description="Name of that MLflow webhook.")
    webhook_tolerance_seconds: float = Field(
        300.0, gt=0, description="Refuse a delivery whose X-MLflow-Timestamp is further off (replays)."
    )
    webhook_max_body_bytes: int = Field(65536, ge=1024, description="Largest webhook body accepted (413).")
    dedup_entries: int = Field(
        100_000, ge=100, description="Delivery ids remembered (oldest forgotten first) to refuse duplicates."
    )
    lease_name: str = Field(
        "mlstack-rollout-controller", description="Kubernetes Lease that elects the one replica that acts."
    )
    lease_seconds: float = Field(15.0, gt=0, description="A holder silent this long loses the Lease.")
    renew_deadline_seconds: float = Field(
        10.0, gt=0, description="The holder stops acting when it could not renew for this long."
    )
    lease_retry_seconds: float = Field(2.0, gt=0, description="How often to renew or try to take the Lease.")
    identity: str | None = Field(
        None, description="This replica's name in the Lease and in Events (default: the host name)."
    )

    @model_validator(mode="after")
    def _lease_timing(self) -> RolloutConfig:
        # client-go's rule (leaderelection.go NewLeaderElector): the holder must give up before
        # another replica may take over, and must try to renew more than once before giving up
        if not self.lease_retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(
                "need lease_retry_seconds < renew_deadline_seconds < lease_seconds, got "
                f"{self.lease_retry_seconds} / {self.renew_deadline_seconds} / {self.lease_seconds}"
            )
        return self


_FILE_LAYER: ContextVar[dict[str, Any] | None] = ContextVar("mlstack_file_layer", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The merged YAML files of the current ``load_settings`` call (below the environment)."""

    def get_field_value(  # pragma: no cover - __call__ is used instead
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _FILE_LAYER.get() or {}


class Settings(BaseSettings):
    """Every setting of the stack, with its default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    home: Path = Field(Path(".mlstack"), description="State directory: MLflow DB, artifacts, runs.")
    config: Path | None = Field(None, description="User settings YAML (like --config).")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: SQLite under home).")
    registry_uri: str | None = Field(None, description="MLflow registry URI (default: tracking_uri).")
    experiment: str = Field("mlstack", description="MLflow experiment of training runs.")
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO); falls back to AWS_ENDPOINT_URL."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level, any case."
    )
    log_format: Literal["auto", "text", "json"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise."
    )
    debug: bool = Field(False, description="Show the traceback of an unexpected error.")
    allow_default_contract: bool = Field(False, description="Let --data run with the generator's contract.")
    git_commit: str | None = Field(None, description="Lineage commit (default: git rev-parse HEAD).")
    lock_sha256: str | None = Field(None, description="Lineage lock hash (default: hash of uv.lock).")
    component_image: str = Field(
        "mlstack:0.1.0", description="Image of the KFP components (at compile time)."
    )
    model_version: str | None = Field(None, description="Version `mlstack serve` reports.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # first wins: explicit argument > environment > files; the field defaults come last
        return (init_settings, env_settings, _FileSource(settings_cls))

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


def read_yaml_file(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a user file; a missing file, a directory or bad YAML is a ConfigError."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{file}: is a directory, expected a YAML file")
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    try:
        loaded = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: must hold a mapping at the top level")
    return loaded


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, key by key: nested mappings merge, everything else is replaced."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def environment_layer() -> dict[str, Any]:
    """The ``MLSTACK_*`` variables as a nested mapping (values still text)."""
    return EnvSettingsSource(Settings)()


def user_config_path(path: str | Path | None = None) -> Path | None:
    """The user's settings file: the explicit path, else ``$MLSTACK_CONFIG``."""
    if path:
        return Path(path)
    from_env = environment_layer().get("config")
    return Path(from_env) if from_env else None


def config_layers(
    path: str | Path | None = None, shipped: str | Path | None = None, **overrides: Any
) -> list[tuple[str, dict[str, Any]]]:
    """Every source of values, lowest precedence first, each checked for unknown keys."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if shipped:
        layers.append((f"shipped {shipped}", read_yaml_file(shipped)))
    user = user_config_path(path)
    if user:
        layers.append((f"file {user}", read_yaml_file(user)))
    layers.append(("environment", environment_layer()))
    layers.append(("argument", dict(overrides)))
    for source, data in layers:
        label = source.split(" ", 1)[1] if " " in source else source
        if source == "environment":
            _reject_unknown_env(data)
        else:
            reject_unknown(Settings, data, label, ConfigError)
    return layers


def _reject_unknown_env(data: dict[str, Any]) -> None:
    found = unknown_keys(Settings, data)
    if found:
        key, closest = found[0]
        name = ENV_PREFIX + key.replace(".", "__").upper()
        hint = f" (did you mean {ENV_PREFIX + closest.replace('.', '__').upper()}?)" if closest else ""
        raise ConfigError(f"environment: unknown variable {name}{hint}")


def load_settings(
    path: str | Path | None = None, shipped: str | Path | None = None, **overrides: Any
) -> Settings:
    """Settings from the defaults, the shipped file, the user file, the environment and ``overrides``."""
    layers = config_layers(path, shipped, **overrides)
    files: dict[str, Any] = {}
    for source, data in layers:
        if source.startswith(("shipped ", "file ")):
            files = deep_merge(files, data)
    token = _FILE_LAYER.set(files)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("invalid configuration: " + _one_line(exc)) from exc
    finally:
        _FILE_LAYER.reset(token)


def _one_line(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
