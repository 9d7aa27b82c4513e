"""The one door to MLflow: a server's address and credentials in, an ``MlflowClient`` out.

MLflow keeps process-global state that its fluent API reads: the tracking and registry URIs
(``mlflow.set_tracking_uri``) and the basic-auth credentials, which it reads from the
``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` variables on every request
(``mlflow/utils/credentials.py`` ``get_default_host_creds``, MLflow 3.17.2). Nothing outside this
module touches that state, so one process can talk to two registries:

- ``connect(address).client`` is an ``MlflowClient`` whose REST stores carry the address's own
  credentials (``mlflow.store.tracking.rest_store.RestStore`` with an explicit ``MlflowHostCreds``);
- what MLflow only does through the globals runs inside ``Mlflow.session()``, which sets them under
  a lock and restores them: ``mlflow.<flavor>.log_model`` and ``mlflow.register_model`` (both resolve
  the tracking URI globally, ``mlflow/models/model.py`` ``Model.log``), and artifact transfers through
  the server's proxy (``mlflow/store/artifact/http_artifact_repo.py`` reads the credentials from the
  environment). ``models:/`` URIs are never handed to MLflow: its resolver asks the global registry
  whatever registry URI it is given (``mlflow/store/artifact/models_artifact_repo.py``
  ``_get_model_uri_infos``); versions are resolved with the client and fetched from their storage URI.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlstack.core.errors import UsageError
from mlstack.core.settings import Settings

if TYPE_CHECKING:  # importing MLflow takes seconds: only where a client is first used
    from mlflow import MlflowClient

    from mlstack.core.contract import DataContract
    from mlstack.core.model import LoadedModel

# MLflow's own names for the credentials (what the chart and the KFP steps set)
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
_GLOBAL_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", USERNAME_ENV, PASSWORD_ENV)
_SESSION = threading.RLock()


@dataclass(frozen=True, kw_only=True)
class MlflowAddress:
    """Where one MLflow server is and who we are to it."""

    tracking_uri: str
    registry_uri: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def registry(self) -> str:
        return self.registry_uri or self.tracking_uri

    @classmethod
    def of(cls, tracking_uri: str, environ: Mapping[str, str] = os.environ) -> MlflowAddress:
        """A server by its URI, with the credentials MLflow's variables hold (how the chart passes them)."""
        return cls(
            tracking_uri=tracking_uri,
            username=environ.get(USERNAME_ENV) or None,
            password=environ.get(PASSWORD_ENV) or None,
        )

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] = os.environ) -> MlflowAddress:
        """The configured server (SQLite under home by default; its directory is created)."""
        uri = settings.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            settings.resolved_home.mkdir(parents=True, exist_ok=True)
        plain = cls.of(uri, environ)
        return cls(
            tracking_uri=uri,
            registry_uri=settings.registry_uri,
            username=plain.username,
            password=plain.password,
        )


class Mlflow:
    """One MLflow server: its address, a client bound to it, and what mlstack asks of it."""

    def __init__(self, address: MlflowAddress) -> None:
        self.address = address
        self._client: MlflowClient | None = None

    def __repr__(self) -> str:
        return f"Mlflow({self.address.tracking_uri})"

    @property
    def client(self) -> MlflowClient:
        """An ``MlflowClient`` of this server whose stores send this address's credentials."""
        if self._client is None:
            self._client = _bound_client(self.address)
        return self._client

    @contextmanager
    def session(self) -> Iterator[None]:
        """Run MLflow's fluent calls against this server, then put MLflow's globals back.

        One session at a time per process (a lock): the globals are the process's, not the thread's.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_state
        from mlflow.tracking._tracking_service import utils as tracking_state

        address = self.address
        with _SESSION:
            saved_env = {name: os.environ.get(name) for name in _GLOBAL_ENV}
            saved_uris = tracking_state._tracking_uri, registry_state._registry_uri
            try:
                mlflow.set_tracking_uri(address.tracking_uri)
                mlflow.set_registry_uri(address.registry)
                for name, value in ((USERNAME_ENV, address.username), (PASSWORD_ENV, address.password)):
                    _set_env(name, value)
                yield
            finally:
                # None un-sets it, as MLflow's own _use_tracking_uri does
                mlflow.set_tracking_uri(saved_uris[0])  # type: ignore[arg-type]
                registry_state._registry_uri = saved_uris[1]
                for name, value in saved_env.items():
                    _set_env(name, value)

    # -- artifacts and models (MLflow does these through its globals) ---------------------------

    def download(self, artifact_uri: str, destination: str | Path | None = None) -> Path:
        """Copy an artifact (file or directory) from the server's store to ``destination`` (a temp dir if None)."""
        import mlflow

        os.environ.setdefault(
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
        )  # one log line, not a bar a file
        with self.session():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri,
                dst_path=None if destination is None else str(destination),
                tracking_uri=self.address.tracking_uri,
                registry_uri=self.address.registry,
            )
        return Path(local)

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str) -> None:
        """Upload one file to a run's artifacts."""
        with self.session():
            self.client.log_artifact(run_id, str(local_path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Write ``text`` as one file of a run's artifacts."""
        with self.session():
            self.client.log_text(run_id, text, artifact_file)

    def log_model_artifact(self, model_id: str, local_path: str | Path, artifact_path: str) -> None:
        """Upload one file beside a logged model's artifacts."""
        with self.session():
            self.client.log_model_artifact(model_id, str(local_path), artifact_path)

    def log_sklearn_model(self, run_id: str, pipeline: Any, **kwargs: Any) -> Any:
        """``mlflow.sklearn.log_model`` into the run ``run_id``; returns MLflow's ModelInfo.

        The run is resumed for the call: ``Model.log`` takes the logged model's experiment from the
        active run, else from the global default experiment (``mlflow/tracking/fluent.py``
        ``_create_logged_model``).
        """
        import mlflow
        import mlflow.sklearn

        with self.session(), mlflow.start_run(run_id=run_id):
            return mlflow.sklearn.log_model(pipeline, **kwargs)

    def register(self, model_uri: str, name: str) -> str:
        """Register a logged model (``models:/m-<id>``) as a new version of ``name``; returns the version."""
        import mlflow

        with self.session():
            return str(mlflow.register_model(model_uri, name).version)

    def load_model(
        self, spec: str, *, engine: str = "auto", name: str | None = None, version: str | None = None
    ) -> LoadedModel:
        """A registered version (``NAME@ALIAS``, ``NAME/VERSION``, with or without ``models:/``), loaded.

        ``name`` and ``version`` override what the model reports (the registry's by default).
        """
        from mlstack.core import model as model_format

        registered, resolved = self.resolve(spec)
        local = self.download(self.version_uri(registered, resolved))
        return model_format.load(
            str(local), name=name or registered, version=version or resolved, engine=engine
        )

    def registered_contract(self, name: str, version: str) -> DataContract:
        """The data contract of a registered version, read from its MLmodel metadata only (no weights)."""
        import tempfile

        import yaml
        from mlflow.exceptions import MlflowException

        from mlstack.core.contract import DataContract

        with tempfile.TemporaryDirectory(prefix="mlstack-contract-") as tmp:
            try:
                local = self.download(self.version_uri(name, version).rstrip("/") + "/MLmodel", tmp)
            except (MlflowException, OSError) as exc:
                raise UsageError(f"no MLmodel for {name} version {version} in the registry: {exc}") from exc
            meta = (yaml.safe_load(local.read_text()) or {}).get("metadata") or {}
        if "mlstack_contract" not in meta:
            raise UsageError(f"{name} version {version} has no mlstack_contract metadata")
        return DataContract.model_validate(meta["mlstack_contract"])

    # -- the registry ---------------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """The experiment's id, created when missing; with a SQLite store its artifacts go beside the DB."""
        client = self.client
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        location = None
        if self.address.tracking_uri.startswith("sqlite:///"):
            root = Path(self.address.tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
            root.mkdir(parents=True, exist_ok=True)
            location = root.as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except Exception:  # created concurrently by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:  # the create failed for another reason: let it surface
                raise
            return experiment.experiment_id

    def aliases(self, model_name: str) -> dict[str, str]:
        """alias -> version for one registered model ({} when the model does not exist).

        Any other failure raises: MLflow's REST client reports a refused connection as an
        MlflowException too, and an unreachable registry is not a model without aliases.
        """
        from mlflow.exceptions import MlflowException

        try:
            return {a: str(v) for a, v in self.client.get_registered_model(model_name).aliases.items()}
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def resolve(self, spec: str) -> tuple[str, str]:
        """Any form ``parse_model_spec`` takes -> (name, version) in the registry; UsageError when unknown."""
        from mlflow.exceptions import MlflowException

        from mlstack.core.model import parse_model_spec

        model_name, alias, version = parse_model_spec(spec)
        try:
            if version:
                self.client.get_model_version(model_name, version)
                return model_name, version
            return model_name, str(self.client.get_model_version_by_alias(model_name, alias).version)
        except MlflowException as exc:
            uri = f"models:/{model_name}/{version}" if version else f"models:/{model_name}@{alias}"
            raise UsageError(f"cannot resolve {uri} in the MLflow registry: {exc.message}") from exc

    def version_uri(self, model_name: str, version: str) -> str:
        """Where the registry stores a version's model directory (``mlflow-artifacts:/…``, ``s3://…``, a path)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_download_uri(model_name, str(version))
        except MlflowException as exc:
            raise UsageError(
                f"{model_name} version {version} is not in the MLflow registry: {exc.message}"
            ) from exc


def connect(address: MlflowAddress) -> Mlflow:
    """The server at ``address`` (nothing global is changed; MLflow is imported on first use)."""
    return Mlflow(address)


def from_settings(settings: Settings) -> Mlflow:
    """The configured server."""
    return connect(MlflowAddress.from_settings(settings))


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _bound_client(address: MlflowAddress) -> MlflowClient:
    """An ``MlflowClient`` whose REST stores send ``address``'s credentials, not the environment's."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=address.tracking_uri, registry_uri=address.registry)
    if address.username is None:
        return client
    from mlflow.store.model_registry.rest_store import RestStore as RegistryStore
    from mlflow.store.tracking.rest_store import RestStore as TrackingStore
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient
    from mlflow.utils.rest_utils import MlflowHostCreds

    def creds(host: str):
        return lambda: MlflowHostCreds(host, username=address.username, password=address.password)

    class _Tracking(TrackingServiceClient):
        @property
        def store(self):  # MLflow's own reads MLFLOW_TRACKING_* on every request
            return TrackingStore(creds(address.tracking_uri))

    class _Registry(ModelRegistryClient):
        @property
        def store(self):
            return RegistryStore(creds(address.registry))

    # the service clients MlflowClient delegates to (mlflow/tracking/client.py __init__ and
    # _get_registry_client, 3.17.2); only HTTP stores take credentials
    if address.tracking_uri.startswith(("http://", "https://")):
        client._tracking_client = _Tracking(address.tracking_uri)
    if address.registry.startswith(("http://", "https://")):
        client._registry_client_lazy = _Registry(address.registry, address.tracking_uri)  # type: ignore[attr-defined]
    return client
