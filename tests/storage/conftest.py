"""The S3 blob store's tests run against a real ``moto_server`` (see tests/s3_server.py for
why moto), started once for the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.s3_server import moto_server, s3_location


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a ``moto_server`` process started for the session (credentials in the
    environment, so server subprocesses started by tests inherit them)."""
    with moto_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server.url


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """An ``s3://`` location in a fresh bucket (created on the first write)."""
    return s3_location(s3_endpoint, f"pacs-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A plain boto3 client on the server, to look at the bucket independently of the store."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


def bucket_of(url: str) -> str:
    """The bucket of an ``s3://bucket/...`` URL."""
    return url.split("://", 1)[1].split("/", 1)[0]
