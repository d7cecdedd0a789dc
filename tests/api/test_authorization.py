"""Every endpoint x every caller (no token, another user, the owner, an admin, a reader) x a
private and a public image: the contract's ground rules, and bad tokens refused everywhere.

The rules, written out here independently of the broker's code: the owner, an admin and a
reader see every image of the owner's, anyone else only a public one; only the owner and an
admin change it; an image the caller cannot see answers 404, a change to one they can see but
not change 403; a refused call changes nothing. A public link needs no token at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.tokens import auth, make_token, reader_auth
from tests.support.upload import Uploaded, Uploader, pending_upload, presign, presign_body

CALLERS: dict[str, dict[str, str]] = {
    "none": {},
    "other": auth("mallory"),
    "owner": auth("alice"),
    "admin": auth("root", admin=True),
    "reader": reader_auth(),
}
VISIBILITIES = ("private", "public")


def sees(caller: str, visibility: str) -> bool:
    """Whether ``caller`` may see (and sign) an image of alice's with ``visibility``."""
    return caller in ("owner", "admin", "reader") or (caller != "none" and visibility == "public")


def changes(caller: str) -> bool:
    """Whether ``caller`` may change an image of alice's."""
    return caller in ("owner", "admin")


@dataclass(frozen=True)
class Shared:
    """An image of alice's in the state under test, and its public-link token.

    For a private image the token is the one it had while it was public: a dead link.
    """

    uploaded: Uploaded
    token: str

    @property
    def id(self) -> str:
        return str(self.uploaded.image["id"])


def shared_image(client: FlaskClient, upload: Uploader, visibility: str) -> Shared:
    """An image of alice's made public (so it has a link), then turned private if asked."""
    uploaded = upload(visibility="public")
    token = uploaded.image["public_url"].rsplit("/", 1)[1]
    if visibility == "private":
        flipped = client.patch(
            f"/images/{uploaded.image['id']}", json={"visibility": "private"}, headers=auth()
        )
        assert flipped.status_code == 200 and flipped.json["image"]["public_url"] is None
        uploaded = Uploaded(uploaded.grant, flipped.json["image"], uploaded.data)
    return Shared(uploaded, token)


def as_owner_sees_it(client: FlaskClient, image_id: str) -> Any:
    response = client.get(f"/images/{image_id}", headers=auth())
    return response.json.get("image") if response.status_code == 200 else response.status_code


def listed_ids(response: TestResponse) -> list[str]:
    return [image["id"] for image in response.json["images"]]


# ---- reads: 200 (or 302) when the caller sees the image, else 404 ------------------------------

Read = Callable[[FlaskClient, Shared, dict[str, str]], TestResponse]

READS: dict[str, tuple[Read, int]] = {
    "get": (lambda c, s, h: c.get(f"/images/{s.id}", headers=h), 200),
    "signed-url": (lambda c, s, h: c.get(f"/images/{s.id}/signed-url", headers=h), 200),
    "signed-url-by-key": (
        lambda c, s, h: c.get(
            "/images/signed-url", query_string={"key": s.uploaded.image["key"]}, headers=h
        ),
        200,
    ),
    "content": (lambda c, s, h: c.get(f"/images/{s.id}/content", headers=h), 302),
}


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("read", READS, ids=str)
def test_reads(client: FlaskClient, upload: Uploader, read: str, visibility: str) -> None:
    shared = shared_image(client, upload, visibility)
    request, ok = READS[read]
    before = as_owner_sees_it(client, shared.id)
    # The owner's read puts the image in the lookup cache: every caller below is answered from
    # it where the form uses it, and twice, so the cached and the database paths both count.
    request(client, shared, auth())
    for caller, headers in CALLERS.items():
        for attempt in (1, 2):
            response = request(client, shared, headers)
            expected = 401 if caller == "none" else ok if sees(caller, visibility) else 404
            assert response.status_code == expected, (caller, attempt, response.json)
            if expected >= 400:
                assert (
                    response.json["error"]["code"]
                    == {401: "unauthorized", 404: "not_found"}[expected]
                )
    assert as_owner_sees_it(client, shared.id) == before


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_batch_signing_leaves_out_what_the_caller_cannot_see(
    client: FlaskClient, upload: Uploader, visibility: str
) -> None:
    shared = shared_image(client, upload, visibility)
    client.post("/images/signed-urls", json={"ids": [shared.id]}, headers=auth())  # cached
    for caller, headers in CALLERS.items():
        for attempt in (1, 2):
            response = client.post(
                "/images/signed-urls", json={"ids": [shared.id, "0" * 24]}, headers=headers
            )
            if caller == "none":
                assert response.status_code == 401
                continue
            assert response.status_code == 200, (caller, attempt)
            expected = [shared.id] if sees(caller, visibility) else []
            assert list(response.json["urls"]) == expected, (caller, attempt)


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("sign", ["0", "1"])
def test_listing_an_owner(
    client: FlaskClient, upload: Uploader, visibility: str, sign: str
) -> None:
    """``owner=alice``: all of hers for her, an admin and a reader; her public ones for others."""
    shared = shared_image(client, upload, visibility)
    for caller, headers in CALLERS.items():
        response = client.get(
            "/images", query_string={"owner": "alice", "sign": sign}, headers=headers
        )
        if caller == "none":
            assert response.status_code == 401
            continue
        assert response.status_code == 200, (caller, response.json)
        expected = [shared.id] if sees(caller, visibility) else []
        assert listed_ids(response) == expected, caller
        for image in response.json["images"]:
            assert ("url" in image) is (sign == "1")


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_listing_without_owner(client: FlaskClient, upload: Uploader, visibility: str) -> None:
    """An admin or a reader sees everyone's images, anyone else their own (not others' public)."""
    shared = shared_image(client, upload, visibility)
    for caller, headers in CALLERS.items():
        response = client.get("/images", headers=headers)
        if caller == "none":
            assert response.status_code == 401
            continue
        expected = [shared.id] if caller in ("owner", "admin", "reader") else []
        assert listed_ids(response) == expected, caller


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_listing_oneself_by_name(client: FlaskClient, upload: Uploader, visibility: str) -> None:
    shared = shared_image(client, upload, visibility)
    upload(sub="mallory")
    response = client.get("/images", query_string={"owner": "mallory"}, headers=auth("mallory"))
    assert shared.id not in listed_ids(response) and len(listed_ids(response)) == 1


# ---- changes: the owner and an admin; 403 for a caller who only sees it; 404 otherwise ---------

Change = Callable[[FlaskClient, Shared, dict[str, str]], TestResponse]

CHANGES: dict[str, tuple[Change, int]] = {
    "patch-caption": (
        lambda c, s, h: c.patch(f"/images/{s.id}", json={"caption": "x"}, headers=h),
        200,
    ),
    "patch-visibility": (
        lambda c, s, h: c.patch(
            f"/images/{s.id}",
            json={
                "visibility": "private" if s.uploaded.image["visibility"] == "public" else "public"
            },
            headers=h,
        ),
        200,
    ),
    "patch-primary": (
        lambda c, s, h: c.patch(f"/images/{s.id}", json={"is_primary": True}, headers=h),
        200,
    ),
    "usage": (lambda c, s, h: c.post(f"/images/{s.id}/usage", headers=h), 200),
    "delete": (lambda c, s, h: c.delete(f"/images/{s.id}", headers=h), 204),
}


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("change", CHANGES, ids=str)
@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_changes(
    client: FlaskClient, upload: Uploader, change: str, caller: str, visibility: str
) -> None:
    shared = shared_image(client, upload, visibility)
    request, ok = CHANGES[change]
    before = as_owner_sees_it(client, shared.id)
    response = request(client, shared, CALLERS[caller])
    if caller == "none":
        expected = 401
    elif changes(caller):
        expected = ok
    else:
        expected = 403 if sees(caller, visibility) else 404
    assert response.status_code == expected, response.json
    if expected >= 400:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[expected]
        assert response.json["error"]["code"] == code
        # Refused: nothing changed, and the link is as it was.
        assert as_owner_sees_it(client, shared.id) == before
        link = client.get(f"/p/{shared.token}")
        assert link.status_code == (302 if visibility == "public" else 404)


# ---- uploads: a reader changes nothing, so it cannot upload ------------------------------------


def _pending_key(client: FlaskClient) -> str:
    """The key of an upload of alice's, stored in the bucket and not yet confirmed."""
    return str(pending_upload(client)["key"])


@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_presign(client: FlaskClient, caller: str) -> None:
    response = presign(client, headers=CALLERS[caller])
    expected = {"none": 401, "reader": 403}.get(caller, 201)
    assert response.status_code == expected, response.json
    if caller == "reader":
        assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_confirm_of_alices_upload(client: FlaskClient, caller: str) -> None:
    key = _pending_key(client)
    response = client.post("/images", json={"key": key}, headers=CALLERS[caller])
    # Only the uploader confirms; an admin or another user does not even see the upload.
    expected = {"none": 401, "reader": 403, "owner": 201}.get(caller, 404)
    assert response.status_code == expected, response.json


def test_a_reader_cannot_confirm_even_its_own_subjects_upload(client: FlaskClient) -> None:
    # The same subject presigned with a plain token: a reader token still changes nothing.
    presigned = pending_upload(client, sub="app-backend")
    refused = client.post("/images", json={"key": presigned["key"]}, headers=reader_auth())
    assert refused.status_code == 403
    assert client.get("/images", headers=auth("app-backend")).json["images"] == []


@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_config(client: FlaskClient, caller: str) -> None:
    assert client.get("/config", headers=CALLERS[caller]).status_code == (
        401 if caller == "none" else 200
    )


# ---- the public link: no token needed, and a token changes nothing -----------------------------


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_public_link_answers_everyone_alike(
    client: FlaskClient, upload: Uploader, visibility: str
) -> None:
    shared = shared_image(client, upload, visibility)
    for caller, headers in CALLERS.items():
        response = client.get(f"/p/{shared.token}", headers=headers)
        assert response.status_code == (302 if visibility == "public" else 404), caller
        if visibility == "private":
            assert response.json["error"]["code"] == "not_found"


# ---- bad tokens, on every endpoint that needs one ---------------------------------------------


@dataclass(frozen=True)
class Call:
    """One endpoint that needs a token."""

    name: str
    request: Callable[[FlaskClient, Uploaded, dict[str, str]], Any]


# An upload id shaped like the broker's: the token is refused before anything looks it up.
MULTIPART = f"/images/multipart/{'0' * 32}"

CALLS = [
    Call("presign", lambda c, u, h: presign(c, headers=h)),
    Call("confirm", lambda c, u, h: c.post("/images", json={"key": _pending_key(c)}, headers=h)),
    Call("list", lambda c, u, h: c.get("/images", headers=h)),
    Call("list-owner", lambda c, u, h: c.get("/images?owner=alice", headers=h)),
    Call("get", lambda c, u, h: c.get(f"/images/{u.image['id']}", headers=h)),
    Call(
        "patch",
        lambda c, u, h: c.patch(f"/images/{u.image['id']}", json={"caption": "x"}, headers=h),
    ),
    Call("usage", lambda c, u, h: c.post(f"/images/{u.image['id']}/usage", headers=h)),
    Call("signed-url", lambda c, u, h: c.get(f"/images/{u.image['id']}/signed-url", headers=h)),
    Call(
        "signed-url-by-key",
        lambda c, u, h: c.get(
            "/images/signed-url", query_string={"key": u.image["key"]}, headers=h
        ),
    ),
    Call(
        "signed-urls",
        lambda c, u, h: c.post("/images/signed-urls", json={"ids": [u.image["id"]]}, headers=h),
    ),
    Call("content", lambda c, u, h: c.get(f"/images/{u.image['id']}/content", headers=h)),
    Call("config", lambda c, u, h: c.get("/config", headers=h)),
    Call("delete", lambda c, u, h: c.delete(f"/images/{u.image['id']}", headers=h)),
    Call(
        "multipart-create",
        lambda c, u, h: c.post("/images/multipart", json=presign_body(), headers=h),
    ),
    Call(
        "multipart-sign",
        lambda c, u, h: c.post(
            f"{MULTIPART}/parts",
            json={"parts": [{"part_number": 1, "content_md5": u.image["content_md5"]}]},
            headers=h,
        ),
    ),
    Call("multipart-list", lambda c, u, h: c.get(f"{MULTIPART}/parts", headers=h)),
    Call(
        "multipart-complete",
        lambda c, u, h: c.post(
            f"{MULTIPART}/complete", json={"parts": [{"part_number": 1, "etag": "x"}]}, headers=h
        ),
    ),
    Call("multipart-abort", lambda c, u, h: c.delete(MULTIPART, headers=h)),
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
    uploaded = upload(visibility="public")
    for token, headers in BAD_TOKENS.items():
        response = call.request(client, uploaded, headers)
        assert response.status_code == 401, (token, response.json)
        assert response.json["error"]["code"] == "unauthorized", token
    # Nothing changed: the image is still there, as it was.
    assert (
        client.get(f"/images/{uploaded.image['id']}", headers=auth()).json["image"]
        == uploaded.image
    )


def test_public_endpoints_need_no_token(client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert client.get(path).status_code == 200, path
