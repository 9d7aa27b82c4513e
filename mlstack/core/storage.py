"""Local paths and ``s3://`` URIs behind one interface (pyarrow filesystems).

The S3 endpoint comes from ``MLSTACK_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL`` (SeaweedFS on kind,
moto in tests); credentials from the usual ``AWS_*`` variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from mlstack.core.errors import UsageError


class StorageError(UsageError, OSError):
    """A URI that cannot be read or written."""


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def s3_endpoint() -> str | None:
    """Settings ``s3_endpoint_url`` (MLSTACK_S3_ENDPOINT_URL), else AWS's own AWS_ENDPOINT_URL."""
    from mlstack.core.settings import load_settings

    return load_settings().s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem for a URI and the path inside it."""
    uri = str(uri)
    if is_s3(uri):
        parsed = urlparse(uri)
        endpoint = s3_endpoint()
        kwargs: dict[str, Any] = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        if endpoint:
            parsed_ep = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed_ep.netloc or parsed_ep.path
            kwargs["scheme"] = parsed_ep.scheme or "http"
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
            kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        return pafs.S3FileSystem(**kwargs), f"{parsed.netloc}{parsed.path}".rstrip("/")
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or an s3:// URI."""
    base = str(uri).rstrip("/")
    return "/".join([base, *[p.strip("/") for p in parts]])


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    found: bool = fs.get_file_info(path).type != pafs.FileType.NotFound
    return found


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path) as stream:
            data: bytes = stream.read()
            return data
    except (FileNotFoundError, OSError) as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object; local writes go through a temporary file and an atomic rename."""
    fs, path = filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(data)
