"""S3 endpoints the suites and the benchmarks run against, Ceph RGW started by ``rgw.sh``, and
readers of presigned URLs and of S3's answers.

``running_rgw()`` starts the project's own Ceph RADOS Gateway (``tests/rgw/rgw.sh``) on free
loopback ports, installing the Debian packages first when they are missing and we are root,
and stops it afterwards; the rgw fixtures and ``make bench`` both use it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import boto3
import requests
from botocore.config import Config

from broker.devservers import S3Server, free_port
from tests.support import REPO

RGW_SCRIPT = REPO / "tests" / "rgw" / "rgw.sh"
# A fresh machine installs the packages first (~20-60 s); a start alone is ~1.5 s.
RGW_START_TIMEOUT_S = 900
RGW_STOP_TIMEOUT_S = 120
# rgw.sh's exit status when a port it was given is taken meanwhile: pick others.
PORT_IN_USE_EXIT = 3


@dataclasses.dataclass(frozen=True)
class S3Endpoint:
    """A running S3 endpoint and its credentials."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    # The implementation, e.g. "ceph-rgw-16.2.15"; "unknown" for an external endpoint that
    # does not say (tests of one implementation's quirks skip).
    server: str = "unknown"

    @classmethod
    def of_moto(cls, server: S3Server) -> S3Endpoint:
        """The session's moto server (it takes any credentials)."""
        return cls(server.endpoint_url, "testing", "testing", server="moto")

    @property
    def port(self) -> int:
        """The TCP port of the endpoint."""
        port = urlsplit(self.endpoint_url).port
        assert port is not None, self.endpoint_url
        return port

    @property
    def is_rgw16(self) -> bool:
        """Whether this is Ceph RGW 16, whose quirks some tests document."""
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


def endpoint_from_env(values: Mapping[str, str]) -> S3Endpoint:
    """The endpoint the variables ``rgw.sh start`` prints (or a caller exported) describe."""
    return S3Endpoint(
        endpoint_url=values["BROKER_TEST_S3_ENDPOINT_URL"].rstrip("/"),
        access_key=values["AWS_ACCESS_KEY_ID"],
        secret_key=values["AWS_SECRET_ACCESS_KEY"],
        region=values.get("AWS_DEFAULT_REGION") or "us-east-1",
        server=values.get("BROKER_TEST_S3_SERVER") or "unknown",
    )


def _rgw_script(
    command: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(RGW_SCRIPT), command],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def running_rgw() -> Iterator[S3Endpoint]:
    """Ceph RGW on free loopback ports until the block ends; RuntimeError if it will not start
    or stop (daemons left running on a shared machine are a failure, not a warning)."""
    # Short path: the daemons' unix sockets live under it (107-byte limit).
    state_dir = tempfile.mkdtemp(prefix="broker-rgw-")
    env = dict(os.environ, BROKER_RGW_DIR=state_dir)
    try:
        for _attempt in range(3):
            env.update(BROKER_RGW_PORT=str(free_port()), BROKER_RGW_MON_PORT=str(free_port()))
            started = _rgw_script("start", env, RGW_START_TIMEOUT_S)
            if started.returncode != PORT_IN_USE_EXIT:
                break
        if started.returncode != 0:
            raise RuntimeError(
                f"tests/rgw/rgw.sh start failed (exit {started.returncode}):\n"
                f"{started.stderr[-6000:]}"
            )
        values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        yield endpoint_from_env({key.strip(): value.strip() for key, value in values.items()})
    finally:
        stopped = _rgw_script("stop", env, RGW_STOP_TIMEOUT_S)
        shutil.rmtree(state_dir, ignore_errors=True)
        if stopped.returncode != 0:
            raise RuntimeError(f"tests/rgw/rgw.sh stop failed:\n{stopped.stderr[-3000:]}")


# ---- presigned URLs and S3's answers ------------------------------------------------------------


def query_params(url: str) -> dict[str, str]:
    """The query parameters of a URL (blank ones too)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def signed_headers(url: str) -> list[str]:
    """The headers a presigned URL signs (X-Amz-SignedHeaders)."""
    return query_params(url)["X-Amz-SignedHeaders"].split(";")


def replace_param(url: str, name: str, value: str | None) -> str:
    """The URL with one query parameter changed (None: removed); the others kept byte for byte."""
    parts = urlsplit(url)
    pairs = []
    found = False
    for pair in parts.query.split("&"):
        if unquote(pair.partition("=")[0]) == name:
            found = True
            if value is not None:
                pairs.append(f"{pair.partition('=')[0]}={quote(value, safe='-._~')}")
        else:
            pairs.append(pair)
    assert found, f"{name} is not in {url}"
    return urlunsplit(parts._replace(query="&".join(pairs)))


def signed_window(url: str) -> tuple[datetime, int]:
    """(X-Amz-Date, X-Amz-Expires) of a presigned URL."""
    q = query_params(url)
    signed_at = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed_at, int(q["X-Amz-Expires"])


def signed_until(url: str) -> datetime:
    """When a presigned URL stops working (X-Amz-Date + X-Amz-Expires), read here rather than
    by the broker's own ``signing.valid_until``, so the tests check it, not use it."""
    signed_at, lifetime = signed_window(url)
    return signed_at + timedelta(seconds=lifetime)


def sleep_past_expiry(url: str, margin: float = 1.2) -> None:
    """Sleep until a presigned URL has surely expired (X-Amz-Date has 1 s resolution)."""
    time.sleep(max(0.0, signed_until(url).timestamp() + margin - time.time()))


def s3_error(resp: requests.Response) -> tuple[int, str | None]:
    """(status, <Code> of the S3 XML error body)."""
    code = ET.fromstring(resp.content).findtext("Code") if resp.content else None
    return resp.status_code, code


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether the bucket holds ``key`` (asked with HEAD; anything but 404 is a failure)."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404, exc.response
        return False
    return True
