"""Fault fixtures: a switchable S3 stand-in in front of moto, broken endpoints, a MongoDB server
of the test's own (see ``tests/support/faults.py`` for the stand-ins)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.devservers import MongoServer, S3Server, free_port
from tests.support.faults import Blackhole, FaultyS3
from tests.support.settings import NO_RATE_LIMITS


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    """The shared per-test settings with no rate limits in the way (tests repeat calls)."""
    return {**config, **NO_RATE_LIMITS}


@pytest.fixture
def faulty_s3(s3_server: S3Server) -> Iterator[FaultyS3]:
    """A switchable S3 endpoint in front of the session's moto server (forwarding at first)."""
    proxy = FaultyS3(upstream=(s3_server.host, s3_server.port))
    yield proxy
    proxy.close()


@pytest.fixture
def make_faulty_s3() -> Iterator[Callable[[str], FaultyS3]]:
    """Standalone broken S3 endpoints (hang or 500) with no upstream at all."""
    made: list[FaultyS3] = []

    def build(mode: str) -> FaultyS3:
        server = FaultyS3(upstream=None, mode=mode)
        made.append(server)
        return server

    yield build
    for server in made:
        server.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    """An S3 endpoint that never completes a TCP handshake."""
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A MongoDB server of this test's own, so the test can stop and restart it."""
    server = MongoServer(tmp_path / "mongo-data", port=free_port()).start()
    yield server
    server.stop()
