"""Property-based fuzzing of every operation in ``/openapi.json`` through the WSGI interface.

Each operation gets its own app (own database and bucket) holding one real image, so valid ids,
keys and bodies reach the code behind the 404s. Checks: no 5xx, responses match the documented
schema, status codes and content types are documented. Bounded and derandomized: the same
examples on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker import create_app
from tests.support.apps import broker_of
from tests.support.images import md5_b64, png_bytes
from tests.support.s3 import S3Endpoint
from tests.support.settings import broker_settings
from tests.support.tokens import auth
from tests.support.upload import Flow, put

MAX_EXAMPLES = 30

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]

SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        # OPTIONS is left out of the unexpected-method probes: it has its own test
        # (test_preflight.py), so one known bug does not mask everything else here.
        "phases": {
            "coverage": {"unexpected-methods": ["get", "put", "post", "delete", "patch", "trace"]}
        },
    }
)


def _load_schema() -> Any:
    """The document as the app serves it (no backing service is contacted to build it)."""
    nowhere = S3Endpoint("http://127.0.0.1:9", "testing", "testing")
    app = create_app(broker_settings("mongodb://127.0.0.1:9/", "openapi", nowhere, "openapi"))
    try:
        return schemathesis.openapi.from_wsgi("/openapi.json", app, config=SCHEMATHESIS_CONFIG)
    finally:
        broker_of(app).db.client.close()


schema = _load_schema()


@pytest.fixture
def fuzz_target(make_app: Callable[..., Flask]) -> tuple[Flow, dict[str, Any]]:
    """An app of this operation's own, holding one real image of alice's (public, so its link
    is real too)."""
    app = make_app()
    flow = Flow(app)
    return flow, flow.upload(visibility="public").image


def _positive(case: Any, location: ParameterLocation) -> bool:
    return case.meta is None or not case.meta.is_negative_at(location)


def _aim_at_real_data(case: Any, flow: Flow, image: dict[str, Any]) -> None:
    """Point valid (positive) examples at real data so they get past "not found"."""
    path = case.path_parameters or {}
    if "image_id" in path and _positive(case, ParameterLocation.PATH):
        path["image_id"] = image["id"]
    if "token" in path and _positive(case, ParameterLocation.PATH):
        path["token"] = image["public_url"].rsplit("/", 1)[1]
    query = case.query if isinstance(case.query, dict) else {}
    by_key = case.path == "/images/signed-url" and "key" in query
    if by_key and _positive(case, ParameterLocation.QUERY):
        query["key"] = image["key"]
    if not isinstance(case.body, dict) or not _positive(case, ParameterLocation.BODY):
        return
    if case.path == "/images/presign-upload":
        # An allowed type and well-formed digests, so valid declarations get a 201.
        case.body["filetype"] = "image/png"
        if "content_md5" in case.body:
            case.body["content_md5"] = md5_b64(png_bytes())
        case.body.pop("checksum_sha256", None)
    if case.path == "/images/signed-urls" and isinstance(case.body.get("ids"), list):
        case.body["ids"] = [image["id"], *case.body["ids"][:99]]
    if case.path == "/images" and case.method.upper() == "POST":
        # A fresh upload for every valid confirm, so 201 responses are checked too.
        data = png_bytes()
        presigned = flow.presign(data, filename=case.body.get("filename") or "photo.png")
        if presigned.status_code == 201:
            assert put(presigned.json, data).status_code == 200
            case.body["key"] = presigned.json["key"]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_document(
    case: Any, fuzz_target: tuple[Flow, dict[str, Any]]
) -> None:
    flow, image = fuzz_target
    _aim_at_real_data(case, flow, image)
    case.call_and_validate(app=flow.app, headers=auth("alice"), checks=CHECKS)
