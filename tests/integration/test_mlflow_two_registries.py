"""Two MLflow servers in one process: each client reaches its own, with its own credentials.

Nothing global decides where a call goes (``mlstack.adapters.mlflow``): the plain session server
(``mlflow_server``) and a basic-auth server run as the chart runs MLflow (``mlflow_auth_server``)
hold the same model name with different versions; the pipeline's own register step writes to both,
and every read comes back from the server it was asked of, in turn and from threads at once.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from mlstack.adapters.mlflow import PASSWORD_ENV, USERNAME_ENV, Mlflow, MlflowAddress, connect
from mlstack.core.settings import CompileConfig, TrainingConfig
from tests.fixtures.registered import CONTRACT, register_trained


def _register(registry: Mlflow, name: str, threshold: float) -> dict:
    config = TrainingConfig(model_name=name, threshold=threshold, compile=CompileConfig(enabled=False))
    return register_trained(registry, config, "two-registries", rows=1500, seed=3)[0]


@pytest.fixture
def no_global_mlflow(monkeypatch):
    """No MLflow address or credentials in the environment: only what the clients carry counts."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", USERNAME_ENV, PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    return mlflow.get_tracking_uri()


def test_each_client_reaches_its_own_server(mlflow_server, mlflow_auth_server, no_global_mlflow):
    plain = connect(MlflowAddress(tracking_uri=mlflow_server))
    guarded = connect(
        MlflowAddress(
            tracking_uri=mlflow_auth_server.url,
            username=mlflow_auth_server.username,
            password=mlflow_auth_server.password,
        )
    )
    name = f"twin-{uuid.uuid4().hex[:8]}"
    assert _register(plain, name, 0.3)["aliases"] == ["champion"]
    assert _register(guarded, name, 0.7)["aliases"] == ["champion"]
    guarded.client.set_registered_model_alias(name, "previous", "1")

    # each answer comes from the server asked: the model, its contract, its aliases
    assert plain.load_model(f"{name}@champion").threshold == 0.3
    assert guarded.load_model(f"{name}@champion").threshold == 0.7
    assert guarded.registered_contract(name, "1").target == CONTRACT.target
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda registry: registry.aliases(name), [plain, guarded] * 10))
    assert answers == [{"champion": "1"}, {"champion": "1", "previous": "1"}] * 10

    # the credentials are the guarded client's own: without them the same server refuses
    anonymous = connect(MlflowAddress(tracking_uri=mlflow_auth_server.url))
    with pytest.raises(MlflowException) as refused:
        anonymous.client.get_registered_model(name)
    assert refused.value.get_http_status_code() == 401
    # and nothing leaked into the process: MLflow's globals are as they were
    assert mlflow.get_tracking_uri() == no_global_mlflow
    assert USERNAME_ENV not in os.environ and PASSWORD_ENV not in os.environ
