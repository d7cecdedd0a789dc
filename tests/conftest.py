"""Shared fixtures: a real MongoDB-wire server and a moto S3 server per session, an app per test.

Each test gets its own database and bucket, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.errors import PyMongoError

from broker import create_app
from broker.devservers import MongoServer, S3Server
from broker.extension import Broker
from tests.helpers import JWT_SECRET, broker_of


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
def make_app(config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Build apps with this test's settings plus overrides; drops their databases afterwards.

    ``prepare=False`` skips creating the indexes and the bucket (for apps whose services are
    deliberately unreachable).
    """
    apps: list[Flask] = []

    def build(prepare: bool = True, **overrides: Any) -> Flask:
        app = create_app({**config, **overrides})
        apps.append(app)
        if prepare:
            broker = broker_of(app)
            broker.db.ensure_indexes()
            broker.bucket.ensure_bucket()
        return app

    yield build
    for app in apps:
        db = broker_of(app).db
        # An app whose database is unreachable on purpose has nothing to drop.
        with contextlib.suppress(PyMongoError):
            db.client.drop_database(db.database.name)
        db.client.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app under test."""
    return make_app()


@pytest.fixture
def broker(app: Flask) -> Broker:
    """The services of the app under test (repositories, bucket, settings, caches)."""
    return broker_of(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()
