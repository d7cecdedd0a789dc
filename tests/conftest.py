"""Shared fixtures: a real MongoDB-wire server and a moto S3 server per session, an app per test.

Each test gets its own database and bucket, so tests never see each other's data.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from broker import create_app
from broker.devservers import MongoServer, S3Server

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A secantusdb server on a free loopback port for the whole session."""
    server = MongoServer(tmp_path_factory.mktemp("mongo") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port for the whole session."""
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def config(mongo_server: MongoServer, s3_server: S3Server) -> dict[str, Any]:
    """Settings for one test: its own database and its own bucket."""
    suffix = uuid.uuid4().hex[:12]
    return {
        "MONGODB_URI": mongo_server.uri,
        "BROKER_MONGODB_DB": f"test_{suffix}",
        "BROKER_JWT_SECRET": JWT_SECRET,
        "BROKER_S3_BUCKET": f"test-{suffix}",
        "BROKER_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "BROKER_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "BROKER_MIN_WIDTH": "1",
        "BROKER_MIN_HEIGHT": "1",
    }


@pytest.fixture
def make_app(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Flask]]:
    """Build apps with this test's settings plus overrides; drops their databases afterwards."""
    # boto3 reads credentials from the environment, not from the app's settings.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", config["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", config["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app({**config, **overrides})
        broker = app.extensions["broker"]
        broker.db.ensure_indexes()
        broker.bucket.ensure_bucket()
        apps.append(app)
        return app

    yield build
    for app in apps:
        db = app.extensions["broker"].db
        db.client.drop_database(db.database.name)
        db.client.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app under test."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


def make_token(
    sub: str | None = "alice",
    *,
    roles: list[str] | None = None,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    expires_in: int = 3600,
    **claims: Any,
) -> str:
    """A token as an identity provider would issue it."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {"iat": now, "exp": now + timedelta(seconds=expires_in), **claims}
    if sub is not None:
        payload["sub"] = sub
    if roles is not None:
        payload["roles"] = roles
    return jwt.encode(payload, secret, algorithm=algorithm)


def auth(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    """Authorization header for a user (or an admin)."""
    return {"Authorization": f"Bearer {make_token(sub, roles=['admin'] if admin else [])}"}


# ---- image bytes ------------------------------------------------------------------------------


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A valid PNG of the given size."""
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def jpeg_bytes(width: int = 8, height: int = 6) -> bytes:
    """A minimal baseline JPEG header with the given size (enough for magic and dimensions)."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof + b"\xff\xd9"


def md5_b64(data: bytes) -> str:
    """Content-MD5 of the bytes."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def image_file(data: bytes) -> io.BytesIO:
    """The bytes as a file."""
    return io.BytesIO(data)
