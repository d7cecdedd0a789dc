"""Every endpoint x {no token, expired, garbled, wrongly signed, other user, owner, admin}."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.tokens import auth, make_token
from tests.support.upload import Uploaded, Uploader, pending_upload, presign


@dataclass(frozen=True)
class Call:
    """One endpoint, and what success and someone else's access look like for it."""

    name: str
    request: Callable[[FlaskClient, Uploaded, dict[str, str]], Any]
    ok: int
    # What a user who is neither owner nor admin gets: 404 for one image; lists and batches
    # answer but show nothing of the owner's.
    other: int = 404
    other_check: Callable[[Any], bool] = lambda response: True


def _alices_pending_key(client: FlaskClient) -> str:
    """The key of an upload of alice's, stored in the bucket and not yet confirmed."""
    return str(pending_upload(client)["key"])


CALLS = [
    Call(
        "presign",
        lambda c, u, h: presign(c, headers=h),
        201,
        other=201,
    ),
    Call(
        "confirm",
        lambda c, u, h: c.post("/images", json={"key": _alices_pending_key(c)}, headers=h),
        201,
    ),
    Call(
        "list",
        lambda c, u, h: c.get("/images", headers=h),
        200,
        other=200,
        other_check=lambda r: r.json["images"] == [],
    ),
    Call("get", lambda c, u, h: c.get(f"/images/{u.image['id']}", headers=h), 200),
    Call(
        "patch",
        lambda c, u, h: c.patch(f"/images/{u.image['id']}", json={"caption": "x"}, headers=h),
        200,
    ),
    Call("usage", lambda c, u, h: c.post(f"/images/{u.image['id']}/usage", headers=h), 200),
    Call(
        "signed-url", lambda c, u, h: c.get(f"/images/{u.image['id']}/signed-url", headers=h), 200
    ),
    Call(
        "signed-url-by-key",
        lambda c, u, h: c.get(
            "/images/signed-url", query_string={"key": u.image["key"]}, headers=h
        ),
        200,
    ),
    Call(
        "signed-urls",
        lambda c, u, h: c.post("/images/signed-urls", json={"ids": [u.image["id"]]}, headers=h),
        200,
        other=200,
        other_check=lambda r: r.json == {"urls": {}},
    ),
    Call("content", lambda c, u, h: c.get(f"/images/{u.image['id']}/content", headers=h), 302),
    Call("config", lambda c, u, h: c.get("/config", headers=h), 200, other=200),
    Call("delete", lambda c, u, h: c.delete(f"/images/{u.image['id']}", headers=h), 204),
]

BAD_TOKENS = {
    "none": {},
    "expired": {"Authorization": f"Bearer {make_token('alice', expires_in=-10)}"},
    "garbled": {"Authorization": "Bearer not.a.jwt"},
    "wrong-scheme": {"Authorization": f"Basic {make_token('alice')}"},
    "wrong-secret": {"Authorization": f"Bearer {make_token('alice', secret='x' * 40)}"},
    "no-subject": {"Authorization": f"Bearer {make_token(None)}"},
    "roles-not-a-list": {"Authorization": f"Bearer {make_token('alice', roles='admin')}"},  # type: ignore[arg-type]
    "alg-none": {
        "Authorization": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
        "eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbImFkbWluIl19."
    },
}


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.name)
def test_bad_or_missing_token_is_401(client: FlaskClient, upload: Uploader, call: Call) -> None:
    uploaded = upload()
    for token, headers in BAD_TOKENS.items():
        response = call.request(client, uploaded, headers)
        assert response.status_code == 401, (token, response.json)
        assert response.json["error"]["code"] == "unauthorized", token
    # Nothing changed: the image is still there, as it was.
    assert (
        client.get(f"/images/{uploaded.image['id']}", headers=auth()).json["image"]
        == uploaded.image
    )


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.name)
def test_other_user_cannot_see_or_touch(client: FlaskClient, upload: Uploader, call: Call) -> None:
    uploaded = upload()
    response = call.request(client, uploaded, auth("mallory"))
    assert response.status_code == call.other, response.json
    assert call.other_check(response)
    if call.other == 404:
        assert response.json["error"]["code"] == "not_found"
    assert (
        client.get(f"/images/{uploaded.image['id']}", headers=auth()).json["image"]
        == uploaded.image
    )


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.name)
def test_the_owner_can_call_every_endpoint(
    client: FlaskClient, upload: Uploader, call: Call
) -> None:
    response = call.request(client, upload(), auth("alice"))
    assert response.status_code == call.ok, response.json


@pytest.mark.parametrize("call", [c for c in CALLS if c.name != "confirm"], ids=lambda c: c.name)
def test_an_admin_can_call_every_endpoint_but_confirm(
    client: FlaskClient, upload: Uploader, call: Call
) -> None:
    uploaded = upload()
    response = call.request(client, uploaded, auth("root", admin=True))
    assert response.status_code == call.ok, response.json
    if call.name == "list":
        assert [image["id"] for image in response.json["images"]] == [uploaded.image["id"]]


def test_admin_cannot_confirm_someone_elses_pending_upload(client: FlaskClient) -> None:
    key = _alices_pending_key(client)
    response = client.post("/images", json={"key": key}, headers=auth("root", admin=True))
    assert response.status_code == 404


def test_public_endpoints_need_no_token(client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert client.get(path).status_code == 200, path
