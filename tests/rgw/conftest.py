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

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from flask import Flask
from flask.testing import FlaskClient

RGW_SCRIPT = Path(__file__).with_name("rgw.sh")
EXTERNAL_ENDPOINT_VAR = "BROKER_TEST_S3_ENDPOINT_URL"
# a fresh machine installs the packages first (~20-60 s); a start alone is ~1.5 s
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 60
PORT_IN_USE_EXIT = 3


@dataclasses.dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    # the implementation, e.g. "ceph-rgw-16.2.15"; "unknown" for an external
    # endpoint that does not say (tests of one implementation's quirks skip)
    server: str = "unknown"

    @property
    def is_rgw16(self) -> bool:
        return self.server.startswith("ceph-rgw-16.")

    def client(self, **config: object) -> Any:
        """A plain boto3 S3 client: SigV4, path-style addressing."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                **config,
            ),
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _parse_env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _run_script(
    command: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(RGW_SCRIPT), command],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _external_endpoint() -> S3Endpoint | None:
    url = os.environ.get(EXTERNAL_ENDPOINT_VAR, "").strip()
    if not url:
        return None
    missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
    if missing:
        raise pytest.UsageError(f"{EXTERNAL_ENDPOINT_VAR} is set but {', '.join(missing)} is not")
    return S3Endpoint(
        endpoint_url=url.rstrip("/"),
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        server=os.environ.get("BROKER_TEST_S3_SERVER") or "unknown",
    )


@pytest.fixture(scope="session")
def rgw() -> Iterator[S3Endpoint]:
    external = _external_endpoint()
    if external is not None:
        yield external
        return

    # short path: the daemons' unix sockets live under it (107-byte limit)
    state_dir = tempfile.mkdtemp(prefix="broker-rgw-")
    env = dict(os.environ, BROKER_RGW_DIR=state_dir)
    result = None
    try:
        for _attempt in range(3):
            # the script refuses ports that are taken; a race with another
            # process picking the same port just means: pick again
            env.update(BROKER_RGW_PORT=str(_free_port()), BROKER_RGW_MON_PORT=str(_free_port()))
            result = _run_script("start", env, START_TIMEOUT_S)
            if result.returncode != PORT_IN_USE_EXIT:
                break
        assert result is not None
        if result.returncode != 0:
            pytest.fail(
                f"tests/rgw/rgw.sh start failed (exit {result.returncode}):\n"
                f"{result.stderr[-6000:]}",
                pytrace=False,
            )
        values = _parse_env(result.stdout)
        endpoint = S3Endpoint(
            endpoint_url=values["BROKER_TEST_S3_ENDPOINT_URL"],
            access_key=values["AWS_ACCESS_KEY_ID"],
            secret_key=values["AWS_SECRET_ACCESS_KEY"],
            region=values["AWS_DEFAULT_REGION"],
            server=values.get("BROKER_TEST_S3_SERVER", "unknown"),
        )
        yield endpoint
    finally:
        stopped = _run_script("stop", env, STOP_TIMEOUT_S)
        shutil.rmtree(state_dir, ignore_errors=True)
        if stopped.returncode != 0:
            pytest.fail(f"tests/rgw/rgw.sh stop failed:\n{stopped.stderr[-3000:]}", pytrace=False)


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
        return make_app(
            BROKER_S3_ENDPOINT_URL=rgw.endpoint_url,
            BROKER_S3_REGION=rgw.region,
            BROKER_S3_BUCKET=rgw_bucket,
            AWS_ACCESS_KEY_ID=rgw.access_key,
            AWS_SECRET_ACCESS_KEY=rgw.secret_key,
            **overrides,
        )

    return build


@pytest.fixture
def rgw_app(make_rgw_app: Callable[..., Flask], signer: str) -> Flask:
    """A broker app on the gateway, signing with ``signer``."""
    return make_rgw_app(BROKER_SIGNER=signer)


@pytest.fixture
def api(rgw_app: Flask) -> FlaskClient:
    """A test client of ``rgw_app``."""
    return rgw_app.test_client()
