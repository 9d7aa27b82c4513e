"""The serving CLI validates ports and names, and both servers honour
--host, refuse a body over serving.max_body_bytes (413) and answer 405 for GET on predict paths."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT


def _serve(*args: str, tmp) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "serve", *args],
        cwd=ROOT,
        env=os.environ | {"MLSTACK_HOME": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--name", "loans", "--port", "99999"], "--port"),
        (["--name", "loans", "--port", "0"], "--port"),
        (["--name", "", "--port", "8080"], "--name"),
        (["--name", "Bad/Name", "--port", "8080"], "--name"),
    ],
)
def test_bad_port_or_name_is_one_error_line_exit_2(args, needle, model_dir, tmp_path):
    result = _serve("--model", str(model_dir), *args, tmp=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def _listen_addresses(port: int) -> set[str]:
    """Local addresses LISTENing on ``port`` per /proc/net/tcp (hex, e.g. 0100007F = 127.0.0.1)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                found.add(address)
    return found


def test_binds_the_configured_host_only(predictor):
    """On main the kserve server bound 0.0.0.0 while logging 127.0.0.1."""
    port = int(predictor.url.rsplit(":", 1)[1])
    assert _listen_addresses(port) == {"0100007F"}, predictor.kind


def test_body_over_the_limit_is_413(predictor):
    """On main the kserve server read a body of any size."""
    body = b'{"instances": [' + b" " * (9 * 1024 * 1024) + b"]}"
    response = httpx.post(f"{predictor.url}/v1/models/{predictor_name()}:predict", content=body, timeout=60)
    assert response.status_code == 413, (predictor.kind, response.text[:200])
    assert response.json()["rule"] == "body_too_large"


@pytest.mark.parametrize("path", ["/v1/models/{name}:predict", "/v2/models/{name}/infer"])
def test_get_on_a_predict_path_is_405(predictor, path):
    response = httpx.get(predictor.url + path.format(name=predictor_name()), timeout=30)
    assert response.status_code == 405, (predictor.kind, response.text[:200])


def predictor_name() -> str:
    from tests.fixtures.serving import MODEL_NAME

    return MODEL_NAME
