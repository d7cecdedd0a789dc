"""Fixtures for tests of the broker on a real S3 implementation.

The gateway itself (``rgw``, ``rgw_bucket``, ``s3``) comes from ``tests/conftest.py``, so
every suite that needs it shares one per session. ``make_rgw_app`` builds broker apps on
``rgw_bucket`` (``rgw_app`` and ``api``: one signing with ``signer``, which tests parametrize
over both signers).

Only tests that ask for these fixtures start anything; such modules carry
``pytestmark = pytest.mark.s3``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.s3 import S3Endpoint
from tests.support.settings import s3_settings


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
