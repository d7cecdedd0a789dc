"""Hostile sharing: anything but a live token as a link, strangers flipping visibility, readers
trying every change, and stale answers the caches could give.

Every refusal is the contract's envelope, never a 5xx, and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from broker.domain import Principal, new_public_token
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.tokens import auth, make_token, reader_auth
from tests.support.upload import Flow, presign


def token_of(image: dict[str, Any]) -> str:
    return str(image["public_url"]).rsplit("/", 1)[1]


def owner_view(flow: Flow, image_id: str) -> dict[str, Any]:
    response = flow.client.get(f"/images/{image_id}", headers=auth())
    assert response.status_code == 200
    image: dict[str, Any] = response.json["image"]
    return image


def hostile_paths(image: dict[str, Any], token: str) -> list[str]:
    """Link paths a prober would try, given a live token and what else it knows of the image."""
    jwt = make_token("alice")
    return [
        f"/p/{image['id']}",
        f"/p/{quote(image['key'], safe='')}",
        f"/p/{image['key']}",
        f"/p/{token[:-1]}",
        f"/p/{token}{token}",
        f"/p/{token.swapcase()}",
        f"/p/{token[:42]}%00",
        f"/p/{token[:42]}%2F",
        f"/p/{token[:42]}%C3%A9",
        f"/p/{token[:41]}%F0%9F%98%80",
        f"/p/{token[:42]}=",
        f"/p/{token[:42]}+",
        f"/p/%2e%2e/images/{image['id']}",
        "/p/..%2F..%2Fimages",
        f"/p/{quote(token + '?variant=x', safe='')}",
        f"/p/{token};jsessionid=1",
        f"/p/{token}%20",
        f"/p/%20{token}",
        f"/p/{jwt}",
        f"/p/{'A' * 43}",
        f"/p/{'-' * 43}",
        f"/p/{'_' * 43}",
        "/p/null",
        "/p/undefined",
        f"/P/{token}",
        "/p/",
        "/p",
    ]


def test_anything_but_a_live_token_is_404(flow: Flow) -> None:
    image = flow.upload(visibility="public").image
    token = token_of(image)
    for path in hostile_paths(image, token):
        response = flow.client.get(path)
        assert_envelope(response, 404, "not_found")
        assert "Location" not in response.headers, path
    assert flow.client.get(f"/p/{token}").status_code == 302


def test_a_dead_link_and_one_that_never_was_answer_alike(flow: Flow) -> None:
    image = flow.upload(visibility="public").image
    dead = token_of(image)
    flow.client.patch(f"/images/{image['id']}", json={"visibility": "private"}, headers=auth())
    answers = [flow.client.get(f"/p/{token}") for token in (dead, new_public_token())]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json == answers[1].json
    assert {a.headers["Cache-Control"] for a in answers} == {"no-store"}


def test_junk_tokens_never_reach_the_database(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    def no(token: str) -> None:
        raise AssertionError(f"looked up {token!r}")

    monkeypatch.setattr(broker_of(flow.app).db.images, "get_public", no)
    for junk in ("x", "A" * 42, "A" * 44, "A" * 42 + "%24", "%E2%80%AE" + "A" * 40):
        assert_envelope(flow.client.get(f"/p/{junk}"), 404, "not_found")


@pytest.mark.parametrize("size", [4096, 20_000])
def test_huge_tokens_are_refused_before_anything_reads_them(flow: Flow, size: int) -> None:
    response = flow.client.get("/p/" + "A" * size)
    assert_envelope(response, 413, "too_large")


@pytest.mark.parametrize(
    "variant", ["x" * 65, "thumb\x00", "../thumb", "$where", "🙂", "thumb,medium"]
)
def test_hostile_variants_are_400(flow: Flow, variant: str) -> None:
    token = token_of(flow.upload(visibility="public").image)
    response = flow.client.get(f"/p/{token}", query_string={"variant": variant})
    assert_envelope(response, 400, "validation_error")
    assert "variant" in response.json["error"]["details"]


def test_a_bearer_token_neither_helps_nor_hurts_a_link(flow: Flow) -> None:
    image = flow.upload(visibility="public").image
    live = token_of(image)
    for headers in (
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"Bearer {make_token('alice', expires_in=-10)}"},
        auth("root", admin=True),
    ):
        assert flow.client.get(f"/p/{live}", headers=headers).status_code == 302
    flow.client.patch(f"/images/{image['id']}", json={"visibility": "private"}, headers=auth())
    # An admin's token does not revive a dead link: the link needs none and takes none.
    response = flow.client.get(f"/p/{live}", headers=auth("root", admin=True))
    assert_envelope(response, 404, "not_found")


@pytest.mark.parametrize("start", ["private", "public"])
@pytest.mark.parametrize("target", ["private", "public"])
def test_strangers_cannot_flip_visibility(flow: Flow, start: str, target: str) -> None:
    image = flow.upload(visibility=start).image
    for who, headers in (("stranger", auth("mallory")), ("reader", reader_auth())):
        response = flow.client.patch(
            f"/images/{image['id']}", json={"visibility": target}, headers=headers
        )
        # A reader sees every image; a stranger only a public one.
        seen = start == "public" or who == "reader"
        assert_envelope(response, *((403, "forbidden") if seen else (404, "not_found")))
    assert owner_view(flow, image["id"]) == image
    if start == "public":
        assert flow.client.get(f"/p/{token_of(image)}").status_code == 302


READER_CHANGES: list[tuple[str, str, Any]] = [
    ("PATCH", "/images/{id}", {"caption": "defaced"}),
    ("PATCH", "/images/{id}", {"visibility": "private"}),
    ("PATCH", "/images/{id}", {"visibility": "public"}),
    ("PATCH", "/images/{id}", {"kind": "cover"}),
    ("PATCH", "/images/{id}", {"tags": ["x"]}),
    ("PATCH", "/images/{id}", {"is_primary": True}),
    ("PATCH", "/images/{id}", {"is_primary": False}),
    ("PATCH", "/images/{id}", {}),
    ("POST", "/images/{id}/usage", None),
    ("DELETE", "/images/{id}", None),
]


@pytest.mark.parametrize("visibility", ["private", "public"])
def test_a_reader_tries_every_change(flow: Flow, visibility: str) -> None:
    image = flow.upload(visibility=visibility).image
    headers = reader_auth()
    for method, template, body in READER_CHANGES:
        path = template.format(id=image["id"])
        response = flow.client.open(path, method=method, json=body, headers=headers)
        assert_envelope(response, 403, "forbidden")
    assert_envelope(presign(flow.client, headers=headers), 403, "forbidden")
    confirm = flow.client.post("/images", json={"key": image["key"]}, headers=headers)
    assert_envelope(confirm, 403, "forbidden")
    # Nothing changed: the image as it was, no upload recorded, no quota taken.
    assert owner_view(flow, image["id"]) == image
    broker = broker_of(flow.app)
    assert broker.db.uploads.collection.count_documents({"owner": "app-backend"}) == 0
    assert broker.db.quotas.collection.count_documents({"_id": "app-backend"}) == 0


def test_an_admins_read_leaves_nothing_in_the_cache_for_strangers(flow: Flow) -> None:
    image = flow.upload().image
    admin = auth("root", admin=True)
    assert flow.client.get(f"/images/{image['id']}/signed-url", headers=admin).status_code == 200
    assert flow.client.post(
        "/images/signed-urls", json={"ids": [image["id"]]}, headers=reader_auth()
    ).json["urls"]
    for _ in range(2):
        stranger = flow.client.get(f"/images/{image['id']}/signed-url", headers=auth("mallory"))
        assert_envelope(stranger, 404, "not_found")
        batch = flow.client.post(
            "/images/signed-urls", json={"ids": [image["id"]]}, headers=auth("mallory")
        )
        assert batch.json == {"urls": {}}


def test_a_refused_patch_mints_no_token(flow: Flow) -> None:
    image = flow.upload().image
    response = flow.client.patch(
        f"/images/{image['id']}", json={"visibility": "public", "kind": 7}, headers=auth()
    )
    assert_envelope(response, 400, "validation_error")
    stored = broker_of(flow.app).db.images.collection.find_one({})
    assert stored is not None and "public_token" not in stored and stored["visibility"] == "private"


def test_two_requests_turning_an_image_public_agree_on_one_link(flow: Flow) -> None:
    # Both read it private and each brings a token of its own; the write keeps the first.
    image = flow.upload().image
    images = broker_of(flow.app).db.images
    record = images.get(image["id"], Principal("alice"))
    assert record is not None
    now = datetime.now(UTC)
    first = images.update(
        record, {"visibility": "public", "public_token": "a" * 43, "updated_at": now}
    )
    second = images.update(
        record, {"visibility": "public", "public_token": "b" * 43, "updated_at": now}
    )
    assert first is not None and second is not None
    assert first.public_token == second.public_token == "a" * 43


def test_confirming_someone_elses_public_key_is_404(flow: Flow) -> None:
    # The key of a public image is visible to all; confirming it is still only its uploader's.
    image = flow.upload(visibility="public").image
    response = flow.client.post("/images", json={"key": image["key"]}, headers=auth("mallory"))
    assert_envelope(response, 404, "not_found")
