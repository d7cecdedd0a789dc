"""Fixtures of the scale suite: the broker as several hosts on one MongoDB and one RGW.

``make_cluster(**settings)`` starts two instances (hosts), each ``gunicorn --workers 2
wsgi:app`` in production mode, on free loopback ports, all at once, sharing this test's fresh
MongoDB database (on the session's secantusdb) and its fresh RGW bucket, with ``settings`` on
top of the suite's; every instance it started is stopped when the test ends, and the database
dropped. ``database`` is that database, to look behind the API; ``s3`` and ``rgw_bucket`` (from
``tests/conftest.py``) the bucket's.

A test of another feature at scale needs nothing more: for example the variant worker on both
hosts at once is ``make_cluster(...).everywhere("worker", "--once")``, a visibility change on
one host and a read on the other is ``cluster.instances[0].call("PATCH", ...)`` then
``cluster.instances[1].call("GET", ...)``.

Every module here is marked ``scale`` and ``s3`` (``pytest -m scale`` runs the suite alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from broker.devservers import MongoServer
from tests.support.cluster import Cluster, start_cluster
from tests.support.s3 import S3Endpoint
from tests.support.settings import broker_settings


@pytest.fixture
def database_name() -> str:
    """The name of this test's database, fresh (dropped afterwards)."""
    return f"scale_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def database(mongo_server: MongoServer, database_name: str) -> Iterator[Database[dict[str, Any]]]:
    """The database every instance of this test shares; dropped when the test ends."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[database_name]
    client.drop_database(database_name)
    client.close()


@pytest.fixture
def cluster_settings(
    mongo_server: MongoServer, rgw: S3Endpoint, rgw_bucket: str, database_name: str
) -> dict[str, str]:
    """What every instance of this test shares: the database, the bucket, the token secret."""
    return broker_settings(mongo_server.uri, database_name, rgw, rgw_bucket)


@pytest.fixture
def make_cluster(
    cluster_settings: dict[str, str],
    database: Database[dict[str, Any]],
    tmp_path: Path,
) -> Iterator[Callable[..., Cluster]]:
    """Start clusters of this test's settings plus ``overrides``; all stopped afterwards."""
    started: list[Cluster] = []

    def make(hosts: int = 2, **overrides: str) -> Cluster:
        log_dir = tmp_path / f"cluster{len(started) + 1}"
        cluster = start_cluster({**cluster_settings, **overrides}, log_dir, hosts=hosts)
        started.append(cluster)
        return cluster

    yield make
    for cluster in started:
        cluster.stop()
