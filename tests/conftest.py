"""Shared fixtures: a real MongoDB-wire server and a moto S3 server per session, apps per test.

The gateway: ``rgw`` (session scope) gives an :class:`S3Endpoint`. By default it starts the
project's own Ceph RADOS Gateway with ``tests/rgw/rgw.sh`` on free loopback ports (installing
the Debian packages first when they are missing and we are root) and stops it when the session
ends; only a session whose tests ask for it starts it (the ``s3``-marked suites ``tests/rgw``
and ``tests/scale``), once. When ``BROKER_TEST_S3_ENDPOINT_URL`` is set, that endpoint is used
instead, with ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_DEFAULT_REGION``,
default us-east-1; ``BROKER_TEST_S3_SERVER`` names the implementation when known), and nothing
is started. ``set -a; eval "$(tests/rgw/rgw.sh start)"; set +a`` sets exactly these, to share
one gateway between several pytest runs. ``rgw_bucket`` (function scope) creates a fresh,
private, uniquely named bucket and deletes it with everything in it afterwards; ``s3`` (module
scope) is a plain boto3 client of the gateway.

The session's one database has its indexes built once; every test's apps use it and it is
emptied after each test, so tests never see each other's data. A test that needs a pristine
database (no indexes, nothing in it) names one of its own with ``own_database``. Each test
gets a bucket of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo import MongoClient

from broker.db.indexes import create_indexes
from broker.devservers import MongoServer, S3Server
from broker.extension import Broker
from tests.support.apps import AppFactory, SharedDatabase, broker_of
from tests.support.s3 import S3Endpoint, endpoint_from_env, running_rgw
from tests.support.settings import broker_settings
from tests.support.upload import Flow, Uploader


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


@pytest.fixture(scope="session")
def shared_database(mongo_server: MongoServer) -> Iterator[SharedDatabase]:
    """The session's database, with every index the broker makes, built once."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri)
    shared = SharedDatabase(mongo_server.uri, client["test_shared"])
    built = sorted(create_indexes(shared.database))
    yield shared
    # Apps on it are told the indexes exist: a test that dropped one must not go unnoticed.
    left = sorted(
        name
        for collection in shared.database.list_collection_names()
        for name in shared.database[collection].index_information()
        if name != "_id_"
    )
    client.close()
    assert left == built, "a test changed the shared database's indexes: give it own_database"


@pytest.fixture
def config(
    mongo_server: MongoServer, s3_server: S3Server, shared_database: SharedDatabase
) -> Iterator[dict[str, str]]:
    """Settings for one test: the shared database (emptied afterwards), a bucket of its own."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    yield broker_settings(
        mongo_server.uri, shared_database.name, S3Endpoint.of_moto(s3_server), bucket
    )
    shared_database.empty()


@pytest.fixture
def own_database() -> str:
    """The name of a database of this test's own, pristine (``make_app`` drops it afterwards)."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_app(
    config: dict[str, str], shared_database: SharedDatabase
) -> Iterator[Callable[..., Flask]]:
    """Build apps with this test's settings plus overrides (see ``AppFactory``)."""
    factory = AppFactory(config, shared_database)
    yield factory
    factory.close()


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


@pytest.fixture
def flow(app: Flask) -> Flow:
    """The upload flow on the app under test."""
    return Flow(app)


@pytest.fixture
def upload(flow: Flow) -> Uploader:
    """Upload through the whole flow on the app under test; what the API answered."""
    return flow.upload


# ---------------------------------------------------------------- the gateway (Ceph RGW)
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
