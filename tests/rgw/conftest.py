"""Fixtures for tests that need a real S3 implementation.

``rgw`` (session scope) gives an :class:`S3Endpoint`. By default it starts the
project's own Ceph RADOS Gateway with ``tests/rgw/rgw.sh`` on free loopback
ports (installing the Debian packages first when they are missing and we are
root) and stops it when the session ends. When ``BROKER_TEST_S3_ENDPOINT_URL``
is set, that endpoint is used instead, with ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_DEFAULT_REGION``, default us-east-1;
``BROKER_TEST_S3_SERVER`` names the implementation when known), and nothing is
started. ``set -a; eval "$(tests/rgw/rgw.sh start)"; set +a`` sets exactly
these, to share one gateway between several pytest runs.

``rgw_bucket`` (function scope) creates a fresh, private, uniquely named bucket
and deletes it with everything in it afterwards; ``s3`` (module scope) is a plain
boto3 client of the gateway. ``make_rgw_app`` builds broker apps on that bucket
(``rgw_app`` and ``api``: one signing with ``signer``, which tests parametrize over
both signers).

Only tests that ask for these fixtures start anything; such modules carry
``pytestmark = pytest.mark.s3``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.s3 import S3Endpoint, endpoint_from_env, running_rgw
from tests.support.settings import s3_settings

EXTERNAL_ENDPOINT_VAR = "BROKER_TEST_S3_ENDPOINT_URL"


def _external_endpoint() -> S3Endpoint | None:
    if not os.environ.get(EXTERNAL_ENDPOINT_VAR, "").strip():
        return None
    missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
    if missing:
        raise pytest.UsageError(f"{EXTERNAL_ENDPOINT_VAR} is set but {', '.join(missing)} is not")
    return endpoint_from_env(os.environ)


@pytest.fixture(scope="session")
def rgw() -> Iterator[S3Endpoint]:
    """The gateway: the external endpoint when one is set, else our own for the session."""
    external = _external_endpoint()
    if external is not None:
        yield external
        return
    with running_rgw() as endpoint:
        yield endpoint


def _empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def s3(rgw: S3Endpoint) -> Iterator[Any]:
    """A plain boto3 S3 client of the gateway, to look at buckets behind the broker's back."""
    client = rgw.client()
    yield client
    client.close()


@pytest.fixture
def rgw_bucket(rgw: S3Endpoint) -> Iterator[str]:
    """Name of a new private bucket; it and its objects are removed afterwards."""
    s3 = rgw.client()
    bucket = f"broker-test-{uuid.uuid4().hex[:16]}"
    create: dict[str, Any] = {"Bucket": bucket}
    if rgw.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": rgw.region}
    s3.create_bucket(**create)
    try:
        yield bucket
    finally:
        _empty_and_delete_bucket(s3, bucket)
        s3.close()


# ---------------------------------------------------------------- the broker on the gateway
@pytest.fixture
def signer() -> str:
    """The broker's signer; tests parametrize it over both with ``both_signers``."""
    return "fast"


@pytest.fixture
def make_rgw_app(
    make_app: Callable[..., Flask], rgw: S3Endpoint, rgw_bucket: str
) -> Callable[..., Flask]:
    """Build broker apps pointed at the gateway and this test's fresh bucket."""

    def build(**overrides: Any) -> Flask:
        return make_app(**{**s3_settings(rgw, rgw_bucket), **overrides})

    return build


@pytest.fixture
def rgw_app(make_rgw_app: Callable[..., Flask], signer: str) -> Flask:
    """A broker app on the gateway, signing with ``signer``."""
    return make_rgw_app(BROKER_SIGNER=signer)


@pytest.fixture
def api(rgw_app: Flask) -> FlaskClient:
    """A test client of ``rgw_app``."""
    return rgw_app.test_client()
