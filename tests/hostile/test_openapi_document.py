"""The document against behaviour the fuzzer cannot reach: every status an operation really
answers is listed for it, and each error body matches the schema documented for its status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft4Validator

from broker.devservers import free_port
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.images import png_bytes
from tests.support.settings import NO_RATE_LIMITS
from tests.support.tokens import auth
from tests.support.upload import Flow, put

LIMIT = 1024


def document(flow: Flow) -> dict[str, Any]:
    response = flow.client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json
    return doc


def documented_statuses(flow: Flow, method: str, template: str) -> set[int]:
    operation = document(flow)["paths"][template][method.lower()]
    return {int(status) for status in operation["responses"]}


def validate_against_document(
    flow: Flow, method: str, template: str, status: int, body: Any
) -> None:
    """Validate ``body`` with the JSON schema the document gives for that response."""
    doc = document(flow)
    responses = doc["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} does not document {status}"
    response_spec = responses[str(status)]
    schema = response_spec["content"]["application/json"]["schema"]
    # OpenAPI 3.0 schemas are (nearly) draft 4; the components ride along for the $refs.
    Draft4Validator({**schema, "components": doc["components"]}).validate(body)


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("POST", "/images/presign-upload"),
        ("POST", "/images"),
        ("PATCH", "/images/{image_id}"),
        ("POST", "/images/signed-urls"),
        ("POST", "/images/{image_id}/usage"),
    ],
)
def test_body_limit_413_is_documented(
    module_flows: Callable[..., Flow], method: str, template: str
) -> None:
    flow = module_flows(BROKER_MAX_BODY_BYTES=str(LIMIT))
    path = template.format(image_id="0123456789abcdef01234567")
    response = flow.client.open(
        path,
        method=method,
        data=json.dumps({"caption": "x" * LIMIT * 2}),
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert_envelope(response, 413, "too_large")
    validate_against_document(flow, method, template, 413, response.json)  # fails if unlisted


def test_quota_413_at_confirm_is_documented(make_app: Callable[..., Any]) -> None:
    # Presign holds the quota now; confirm still counts an upload presigned before the upgrade
    # (its record holds no reservation), and may refuse it with 413.
    app = make_app(BROKER_QUOTA_MAX_IMAGES="1", **NO_RATE_LIMITS)
    flow = Flow(app)
    data = png_bytes()
    first = flow.presign(data)
    broker = broker_of(app)
    broker.db.uploads.collection.update_many({}, {"$unset": {"quota_held": ""}})
    broker.db.quotas.release("alice", len(data))
    second = flow.presign(data)
    broker.db.uploads.collection.update_many({}, {"$unset": {"quota_held": ""}})
    broker.db.quotas.release("alice", len(data))
    for presigned in (first, second):
        assert presigned.status_code == 201
        assert put(presigned.json, data).status_code == 200
    assert (
        flow.client.post("/images", json={"key": first.json["key"]}, headers=auth()).status_code
        == 201
    )
    over = flow.client.post("/images", json={"key": second.json["key"]}, headers=auth())
    assert_envelope(over, 413, "too_large")
    assert 413 in documented_statuses(flow, "POST", "/images")


RATE_LIMITED = [
    ("POST", "/images/presign-upload", "BROKER_RATE_LIMIT_PRESIGN"),
    ("POST", "/images", "BROKER_RATE_LIMIT_CONFIRM"),
    ("GET", "/images/{image_id}/signed-url", "BROKER_RATE_LIMIT_SIGN"),
    ("GET", "/images/signed-url", "BROKER_RATE_LIMIT_SIGN"),
    ("POST", "/images/signed-urls", "BROKER_RATE_LIMIT_SIGN"),
    ("GET", "/images/{image_id}/content", "BROKER_RATE_LIMIT_SIGN"),
]


@pytest.mark.parametrize(("method", "template", "setting"), RATE_LIMITED)
def test_rate_limit_429_is_documented(
    make_app: Callable[..., Any], method: str, template: str, setting: str
) -> None:
    app = make_app(**{**NO_RATE_LIMITS, setting: "2/minute"})
    flow = Flow(app)
    image = flow.upload().image if setting != "BROKER_RATE_LIMIT_PRESIGN" else None
    path = template.format(image_id=image["id"] if image else "x")
    if template == "/images/signed-url":
        path += f"?key={image['key'] if image else 'x'}"
    body: Any = None
    if method == "POST":
        body = {"ids": [image["id"]]} if template.endswith("signed-urls") else {"key": "x"}
    responses = [flow.client.open(path, method=method, json=body, headers=auth()) for _ in range(4)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    assert_envelope(limited[0], 429, "rate_limited")
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert 429 in documented_statuses(flow, method, template)


def test_readyz_503_matches_the_document(make_app: Callable[..., Any]) -> None:
    app = make_app(
        prepare=False,
        BROKER_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        BROKER_S3_CONNECT_TIMEOUT="0.5",
    )
    flow = Flow(app)
    response = flow.client.get("/readyz")
    assert_envelope(response, 503, "unavailable")
    validate_against_document(flow, "GET", "/readyz", 503, response.json)
