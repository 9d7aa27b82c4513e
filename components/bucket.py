"""The chart's pre-install hook: make sure the object-store bucket exists (``python -m mlstack.components.bucket``).

Idempotent: an existing bucket is kept. A bucket that does not exist (HTTP 404) is created. Not
reaching the endpoint at all (a NetworkPolicy dropping the packets, the store still starting) is
retried, then reported in one line saying where it tried; any other refusal (403, a bad endpoint)
fails at once with the store's own message. Exit codes: 0 ready, 1 failed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def ensure_bucket(
    client,
    bucket: str,
    attempts: int = 10,
    delay: float = 6.0,
    sleep: Callable[[float], None] | None = None,
) -> str:
    """'exists' or 'created'; raises RuntimeError with a one-line reason otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError

    sleep = sleep or time.sleep
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", "?")
    for attempt in range(1, attempts + 1):
        try:
            try:
                client.head_bucket(Bucket=bucket)
                return "exists"
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code not in ("404", "NoSuchBucket", "NotFound"):
                    raise RuntimeError(f"{endpoint} refused bucket {bucket!r}: {exc}") from exc
            client.create_bucket(Bucket=bucket)
            return "created"
        except ClientError as exc:
            raise RuntimeError(f"{endpoint} refused to create bucket {bucket!r}: {exc}") from exc
        except BotoCoreError as exc:  # connection refused/timed out, DNS: the network, not the store
            if attempt == attempts:
                raise RuntimeError(
                    f"cannot reach the object store at {endpoint} after {attempts} attempts: {exc} "
                    "(is a NetworkPolicy in the store's namespace admitting this namespace?)"
                ) from exc
            log.warning(
                "attempt %d/%d: cannot reach %s (%s); retrying in %.0fs",
                attempt,
                attempts,
                endpoint,
                exc,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")


def main() -> int:
    import boto3
    from botocore.config import Config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    bucket = os.environ.get("BUCKET", "")
    if not bucket:
        print("error: BUCKET is not set", file=sys.stderr)
        return 1
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None,
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}),
    )
    try:
        print(f"bucket {bucket} {ensure_bucket(client, bucket)}")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
