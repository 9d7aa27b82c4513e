"""The chart's bucket hook (components/bucket.py) against a real S3 server (moto on loopback).

An unreachable store (KFP's SeaweedFS NetworkPolicy dropping the connection) ends in one line
saying so after retries, not a traceback at the hook's deadline: a hook that caught only ClientError
raised EndpointConnectionError out of head_bucket here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config

from mlstack.components.bucket import ensure_bucket
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_creates_a_missing_bucket_and_keeps_an_existing_one(s3_bucket):
    assert ensure_bucket(s3_bucket, "mlstack") == "created"
    assert ensure_bucket(s3_bucket, "mlstack") == "exists"
    assert ensure_bucket(s3_bucket, "drift") == "exists"


def test_an_unreachable_store_is_retried_then_reported_in_one_line():
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    slept = []
    with pytest.raises(RuntimeError, match="cannot reach the object store .* after 3 attempts"):
        ensure_bucket(client, "mlstack", attempts=3, delay=2, sleep=slept.append)
    assert slept == [2, 2]


def test_the_hook_command_exits_1_with_an_error_line_not_a_traceback():
    env = {
        **os.environ,
        "BUCKET": "mlstack",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    code = "import mlstack.components.bucket as b, sys; b.time.sleep = lambda s: None; sys.exit(b.main())"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot reach the object store")
    assert "Traceback" not in proc.stderr
