"""Hostile-input fixtures: apps without rate limits, and apps shared by a module's tests.

Rate limits are turned off here: these suites send many requests as one user on purpose, and
what they prove (no 5xx, the envelope, sanitising) must not hinge on the throttle.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from broker.devservers import MongoServer, S3Server
from tests.support.apps import AppFactory
from tests.support.s3 import S3Endpoint
from tests.support.settings import NO_RATE_LIMITS, broker_settings
from tests.support.upload import Flow


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    """The shared per-test settings without rate limits."""
    return {**config, **NO_RATE_LIMITS}


@pytest.fixture
def make_flow(make_app: Callable[..., Flask]) -> Callable[..., Flow]:
    """The upload flow on an app built with extra settings."""

    def build(**overrides: Any) -> Flow:
        return Flow(make_app(**overrides))

    return build


@pytest.fixture(scope="module")
def module_flows(mongo_server: MongoServer, s3_server: S3Server) -> Iterator[Callable[..., Flow]]:
    """Apps shared by a module's tests, each with a database and a bucket of its own.

    Their data lives as long as the module, so they keep out of the shared database (emptied
    after every test); each is built once per module, not for each of a hundred parametrized
    cases.
    """

    factory = AppFactory({})

    def build(**overrides: str) -> Flow:
        suffix = uuid.uuid4().hex[:12]
        moto = S3Endpoint.of_moto(s3_server)
        settings = broker_settings(
            mongo_server.uri, f"module_{suffix}", moto, f"module-{suffix}", **NO_RATE_LIMITS
        )
        return Flow(factory.build({**settings, **overrides}))

    yield build
    factory.close()
