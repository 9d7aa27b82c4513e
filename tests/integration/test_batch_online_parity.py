"""Batch answers equal the online predictor's, over HTTP, for the same registered model version.

Runs the real ``mlstack serve``; nothing is skipped (a missing server fails). Parity with the predict
path itself is asserted in test_batch_pipeline.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
import pytest

from mlstack.adapters.mlflow import MlflowAddress, connect
from mlstack.components.batch_score import score_table
from mlstack.core.data import save_table
from mlstack.core.generator import generate
from tests.conftest import free_port, stop, wait_for_http


@pytest.fixture
def online_server(registered_loan_model, tmp_path):
    """`mlstack serve` on the registered version, a real process on a free loopback port."""
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlstack.cli.main", "serve", "--name", "fraud", "--port", str(port),
         "--model", f"models:/fraud/{registered_loan_model.version}"],
        env={**os.environ, "MLSTACK_HOME": str(registered_loan_model.home), "MLSTACK_SERVING__HOST": "127.0.0.1"},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/v2/health/ready", timeout=300, process=process)  # model load on a busy box
        yield url
    finally:
        stop(process, timeout=20)
        log.close()


def test_batch_equals_online_server_for_the_evaluation_set(registered_loan_model, online_server, tmp_path):
    frame = generate(3000, seed=41)
    source = save_table(frame, str(tmp_path / "eval.parquet"))
    model = connect(MlflowAddress(tracking_uri=registered_loan_model.tracking_uri)).load_model(
        f"fraud/{registered_loan_model.version}"
    )
    summary = score_table(model, source, str(tmp_path / "out.parquet"), chunk_rows=700)
    batch = pd.read_parquet(tmp_path / "out.parquet")
    assert summary.scored == len(frame)

    features = frame[model.contract.feature_names].astype(object).where(frame.notna(), None)
    online_labels, online_proba, versions = [], [], set()
    for start in range(0, len(features), 500):
        rows = features.iloc[start : start + 500].to_dict(orient="records")
        response = httpx.post(
            f"{online_server}/v1/models/fraud:predict",
            json={"instances": rows, "parameters": {"return_probabilities": True}},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        online_labels += body["predictions"]
        online_proba += body["probabilities"]
        versions.add(body["model_version"])
    assert versions == {registered_loan_model.version} == set(batch["model_version"])
    mismatches = int((batch["prediction"].to_numpy() != np.asarray(online_labels)).sum())
    assert mismatches == 0
    np.testing.assert_allclose(batch["probability"].to_numpy(), online_proba, rtol=0, atol=1e-9)
