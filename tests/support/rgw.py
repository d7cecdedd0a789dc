"""Helpers of the suites that run the broker on Ceph RGW."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.apps import broker_of
from tests.support.tokens import auth

SIGNERS = ("fast", "boto3")
# Tests that depend on the signature run with both signers: the broker's own SigV4 code and
# boto3's, the reference, so the fast one is proven against a server that checks signatures.
both_signers = pytest.mark.parametrize("signer", SIGNERS)


def signed_get(client: FlaskClient, image_id: str, sub: str = "alice", **query: Any) -> str:
    """A signed GET URL of the image, as its owner (``sub``) asks for it."""
    resp = client.get(f"/images/{image_id}/signed-url", query_string=query, headers=auth(sub))
    assert resp.status_code == 200, resp.json
    url: str = resp.json["url"]
    return url


def images_recorded(app: Flask) -> int:
    """How many images the app's database holds."""
    count: int = broker_of(app).db.images.collection.count_documents({})
    return count
