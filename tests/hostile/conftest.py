"""Hostile-input fixtures and helpers: strict envelope checks and a real upload flow.

Rate limits are turned off here: these suites send many requests as one user on purpose, and
what they prove (no 5xx, the envelope, sanitising) must not hinge on the throttle.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.errors import PyMongoError

from broker import create_app
from broker.devservers import MongoServer, S3Server
from tests.api.conftest import put_to_bucket
from tests.helpers import JWT_SECRET, auth, broker_of, md5_b64, png_bytes

# The contract's error codes by status.
CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    422: "upload_invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

NO_RATE_LIMITS = {
    "BROKER_RATE_LIMIT_PRESIGN": "",
    "BROKER_RATE_LIMIT_CONFIRM": "",
    "BROKER_RATE_LIMIT_SIGN": "",
}

# Every key the broker makes: <user segment>/<32 hex><allowlisted extension>. The user segment is
# the plain sub ([A-Za-z0-9_-]{1,64}) or "u." and a hex digest.
KEY_PATTERN = re.compile(
    r"^(?:[A-Za-z0-9_-]{1,64}|u\.[0-9a-f]{32})/[0-9a-f]{32}\.(?:jpg|png|gif|webp)$"
)


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    """The shared per-test settings without rate limits."""
    return {**config, **NO_RATE_LIMITS}


def assert_envelope(
    response: Any, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """The response is the contract's error envelope (with the status and code when given)."""
    if status is not None:
        assert response.status_code == status, (response.status_code, response.get_data()[:500])
    assert 400 <= response.status_code < 600, response.status_code
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["code"] == CODES[response.status_code], (response.status_code, error)
    if code is not None:
        assert error["code"] == code, error
    if "details" in error:
        assert isinstance(error["details"], dict), error
    return error


def assert_no_leak(response: Any, *secrets: str) -> None:
    """No stack trace, internal endpoint or other secret appears in the response body."""
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    for secret in secrets:
        if secret:
            assert secret not in text


@dataclass
class Flow:
    """Drives the real upload flow for one app: presign, PUT to the bucket, confirm."""

    app: Flask
    client: FlaskClient

    def presign(
        self, sub: str = "alice", headers: Mapping[str, str] | None = None, **fields: Any
    ) -> Any:
        data = png_bytes()
        body = {
            "filename": "photo.png",
            "filetype": "image/png",
            "size": len(data),
            "content_md5": md5_b64(data),
            **fields,
        }
        return self.client.post(
            "/images/presign-upload", json=body, headers=dict(headers or auth(sub))
        )

    def upload(
        self,
        sub: str = "alice",
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """The whole flow; returns the confirmed image."""
        data = data if data is not None else png_bytes()
        headers = dict(headers or auth(sub))
        body = {
            "filename": "photo.png",
            "filetype": "image/png",
            "size": len(data),
            "content_md5": md5_b64(data),
            **fields,
        }
        presigned = self.client.post("/images/presign-upload", json=body, headers=headers)
        assert presigned.status_code == 201, presigned.get_data()[:500]
        assert put_to_bucket(presigned.json, data).status_code == 200
        confirmed = self.client.post(
            "/images", json={"key": presigned.json["key"]}, headers=headers
        )
        assert confirmed.status_code == 201, confirmed.get_data()[:500]
        image: dict[str, Any] = confirmed.json["image"]
        assert image["key"] == presigned.json["key"]
        return image


@pytest.fixture
def flow(app: Flask) -> Flow:
    """The upload flow on this test's app."""
    return Flow(app, app.test_client())


@pytest.fixture
def make_flow(make_app: Callable[..., Flask]) -> Callable[..., Flow]:
    """The upload flow on an app built with extra settings."""

    def build(**overrides: Any) -> Flow:
        app = make_app(**overrides)
        return Flow(app, app.test_client())

    return build


@pytest.fixture(scope="module")
def module_flows(mongo_server: MongoServer, s3_server: S3Server) -> Iterator[Callable[..., Flow]]:
    """Apps shared by a module's tests that only validate (each with its own database/bucket).

    Building an app prepares a database (twenty-odd indexes): done once per module, not for
    each of a hundred parametrized cases that are refused before they touch it.
    """
    made: list[Flow] = []

    def build(**overrides: Any) -> Flow:
        suffix = uuid.uuid4().hex[:12]
        app = create_app(
            {
                "MONGODB_URI": mongo_server.uri,
                "BROKER_MONGODB_DB": f"test_{suffix}",
                "BROKER_JWT_SECRET": JWT_SECRET,
                "BROKER_S3_BUCKET": f"test-{suffix}",
                "BROKER_S3_ENDPOINT_URL": s3_server.endpoint_url,
                "BROKER_S3_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                **NO_RATE_LIMITS,
                **overrides,
            }
        )
        broker = broker_of(app)
        broker.db.ensure_indexes()
        broker.bucket.ensure_bucket()
        flow = Flow(app, app.test_client())
        made.append(flow)
        return flow

    yield build
    for flow in made:
        db = broker_of(flow.app).db
        with contextlib.suppress(PyMongoError):
            db.client.drop_database(db.database.name)
        db.client.close()
