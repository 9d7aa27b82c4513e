"""Reading aliases: "no such model" is an empty answer, an unreachable registry is an error.

Before, the MLflow adapter's ``aliases`` swallowed every MlflowException, and MLflow's REST client wraps a
refused connection in one (mlflow/utils/rest_utils.py: "API request to ... failed with exception"),
so ``kubectl model status`` showed no aliases while MLflow was down and ``promote`` skipped moving
the challenger alias.
"""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from mlstack.adapters import mlflow as mlflow_adapter
from mlstack.adapters.mlflow import MlflowAddress
from tests.conftest import free_port


def test_an_unknown_model_has_no_aliases(mlstack_home):
    registry = mlflow_adapter.connect(MlflowAddress(tracking_uri=f"sqlite:///{mlstack_home / 'mlflow.db'}"))
    assert registry.aliases("never-registered") == {}


def test_an_unreachable_registry_is_an_error_not_an_empty_answer(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    registry = mlflow_adapter.connect(MlflowAddress(tracking_uri=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(MlflowException, match="API request to"):
        registry.aliases("fraud")
