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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
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

    minimum: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.70, "pr_auc": 0.25})
    maximum: dict[str, float] = Field(default_factory=lambda: {"log_loss": 0.60, "brier": 0.20})
    # metric -> largest allowed drop versus the champion on the same evaluation set
    max_regression: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.01, "pr_auc": 0.02})


class CompileConfig(_Strict):
    """The compiled serving artifact: exported at registration, attached only within these limits."""

    enabled: bool = True
    # on the evaluation set, ONNX vs the scikit-learn pipeline: predictions that change at the
    # model's threshold, and the largest absolute difference of the positive-class probability
    max_label_flips: int = Field(0, ge=0)
    max_abs_diff: float = Field(1e-6, ge=0.0)


class TrainingConfig(_Strict):
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


class ServingConfig(_Strict):
    max_batch_rows: int = Field(1000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    host: str = "127.0.0.1"  # the image sets MLSTACK_SERVING__HOST=0.0.0.0
    port: int = Field(8080, ge=1, le=65535)
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
    # a request must arrive whole within this many seconds (then 408 and the connection closes);
    # an idle keep-alive connection is closed after idle_timeout_seconds (KServe's own default: 65)
    read_timeout_seconds: float = Field(30.0, gt=0)
    idle_timeout_seconds: int = Field(65, ge=1)


class SinkConfig(_Strict):
    store: str | None = None  # payload-log store (directory or s3:// prefix); default $MLSTACK_HOME/payloads
    host: str = "127.0.0.1"  # the image sets MLSTACK_SINK__HOST=0.0.0.0
    port: int = Field(8090, ge=1, le=65535)
    flush_rows: int = Field(5000, ge=1)
    flush_seconds: float = Field(5.0, gt=0)
    wal_dir: str | None = None  # default: $MLSTACK_HOME/sink-wal (a PVC in the cluster)
    pair_timeout_seconds: float = Field(300.0, gt=0)  # then an unpaired event goes to unpaired/
    dedup_hours: float = Field(24.0, gt=0)  # a stored ce-id is refused again for this long, then forgotten
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # events held in memory (halves waiting for a partner, pairs waiting for a flush), each counted as
    # its body plus its measured overhead, may total this many bytes; beyond it: 503 + Retry-After
    max_pending_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    max_pending_events: int = Field(
        200_000, ge=1, description="events held in memory at most (beyond it: 503 + Retry-After)"
    )
    early_label_seconds: float = Field(
        600.0, ge=0, description="a label for an id not logged yet is held this long for its pair"
    )
    max_early_labels: int = Field(100_000, ge=0, description="labels held for their pair at most")
    contract_wait_seconds: float = Field(
        30.0,
        ge=0,
        description="a pair whose contract is being looked up waits this long for it, then is written",
    )
    # a ce-time older than this or later than max_future_seconds is replaced by the receive time
    max_event_age_hours: float = Field(168.0, gt=0)
    max_future_seconds: float = Field(300.0, ge=0)
    contract_retry_seconds: float = Field(60.0, ge=0)  # how long a registry miss is remembered
    # an event must arrive whole within this many seconds (then 408 and the connection closes);
    # an idle keep-alive connection is closed after idle_timeout_seconds (uvicorn's default: 5)
    read_timeout_seconds: float = Field(30.0, gt=0)
    idle_timeout_seconds: int = Field(5, ge=1)
    compact_min_age_hours: float = Field(
        2.0, ge=0, description="`mlstack payloads compact` merges partitions whose hour ended this long ago"
    )


class DriftConfig(_Strict):
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


# the revision a queue-proxy series belongs to: its scrape target's target_info (OTel resource attributes)
_ON_REVISION = (
    " * on (job, instance) group_left (kn_revision_name)"
    ' target_info{k8s_namespace_name="$namespace",kn_revision_name="$revision"}'
)


class CanaryConfig(_Strict):
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
    # PromQL per revision; $namespace, $revision and $window are substituted. The vocabulary is the one
    # Knative 1.21's queue-proxy exports (config-observability request-metrics-protocol: prometheus):
    # kn_serving_invocation_duration_seconds (labels: http_response_status_code only); the revision's
    # name and namespace exist only on the target's target_info series, hence the join. Upstream
    # files for every name: monitoring/README.md. The chart passes these defaults through unchanged.
    requests_query: str = (
        "sum(increase(kn_serving_invocation_duration_seconds_count[$window])" + _ON_REVISION + ")"
    )
    errors_query: str = (
        'sum(increase(kn_serving_invocation_duration_seconds_count{http_response_status_code=~"5.."}[$window])'
        + _ON_REVISION
        + ")"
    )
    p95_query: str = (
        "histogram_quantile(0.95, sum by (le) (rate(kn_serving_invocation_duration_seconds_bucket[$window])"
        + _ON_REVISION
        + "))"
    )
    p95_query_unit_ms: float = Field(1000.0, gt=0)  # the p95 query answers in seconds; x this = ms
    report_dir: str | None = None  # default: <home>/canary
    schedule: str = "*/10 * * * *"
    # the training pipeline's deploy step: start a canary of each registered version when on
    deploy: bool = False
    inference_service: str | None = None  # default: training.model_name
    namespace: str = "mlstack"


class BatchConfig(_Strict):
    """Batch scoring: chunk size (memory stays at about one chunk) and the default recurring schedule."""

    chunk_rows: int = Field(50_000, ge=1)
    schedule: str = "0 2 * * *"  # cron, 5 fields (KFP's leading seconds field is added on submit)
    kfp_experiment: str = "batch-scoring"


_FILE_LAYER: ContextVar[dict[str, Any] | None] = ContextVar("mlstack_file_layer", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The merged YAML files of the current ``load_settings`` call (below the environment)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used instead
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
