"""Sharing: visibility at presign, confirm and PATCH, ``BROKER_PUBLIC_KINDS``, ``public_url``,
the public link route, and the lookup cache's bound on a link that died.

What the bucket does with the redirect's target is proven on RGW (tests/rgw/test_public_links.py);
here the broker's side of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from broker import extension
from broker.caches import LookupCache
from broker.db.indexes import LIST_SCOPES, list_index_keys
from broker.domain import Principal
from broker.pagination import SORTS
from broker.settings import ConfigError, load_settings
from tests.support.apps import broker_of
from tests.support.images import md5_b64, png_bytes
from tests.support.multipart import MULTIPART_MAX_BYTES, MiB, Multipart, padded_png
from tests.support.tokens import auth, reader_auth
from tests.support.upload import Uploader, pending_upload, presign_body
from tests.support.upload import upload as upload_with

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def token_of(image: dict[str, Any]) -> str:
    """The token of a public image's link."""
    url = image["public_url"]
    assert isinstance(url, str)
    token = url.rsplit("/", 1)[1]
    assert TOKEN.fullmatch(token), url
    return token


def set_visibility(client: FlaskClient, image_id: str, visibility: str) -> dict[str, Any]:
    response = client.patch(f"/images/{image_id}", json={"visibility": visibility}, headers=auth())
    assert response.status_code == 200, response.json
    image: dict[str, Any] = response.json["image"]
    return image


def presign(client: FlaskClient, data: bytes, **fields: Any) -> dict[str, Any]:
    """Presign and PUT ``data`` as alice with these presign ``fields``; the grant."""
    return pending_upload(client, data, **fields)


def confirmed(client: FlaskClient, key: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/images", json={"key": key, **fields}, headers=auth())
    assert response.status_code == 201, response.json
    image: dict[str, Any] = response.json["image"]
    return image


class TestVisibilityAtUpload:
    def test_private_by_default_without_a_link(self, upload: Uploader) -> None:
        image = upload().image
        assert image["visibility"] == "private" and image["public_url"] is None

    def test_public_at_presign_gets_a_link_on_this_host(self, upload: Uploader) -> None:
        image = upload(visibility="public").image
        assert image["visibility"] == "public"
        assert image["public_url"] == f"http://localhost/p/{token_of(image)}"

    @pytest.mark.parametrize(
        ("at_presign", "at_confirm", "expected"),
        [
            ("public", "private", "private"),
            ("private", "public", "public"),
            (None, None, "private"),
        ],
    )
    def test_confirm_overrides_presign(
        self, client: FlaskClient, at_presign: str | None, at_confirm: str | None, expected: str
    ) -> None:
        data = png_bytes()
        grant = presign(client, data, **({"visibility": at_presign} if at_presign else {}))
        image = confirmed(
            client, grant["key"], **({"visibility": at_confirm} if at_confirm else {})
        )
        assert image["visibility"] == expected
        assert (image["public_url"] is not None) is (expected == "public")

    def test_confirming_again_keeps_what_was_recorded(self, client: FlaskClient) -> None:
        grant = presign(client, png_bytes(), visibility="public")
        first = confirmed(client, grant["key"])
        again = client.post(
            "/images", json={"key": grant["key"], "visibility": "private"}, headers=auth()
        )
        assert again.status_code == 200 and again.json["image"] == first

    def test_public_kinds_make_new_images_public_unless_the_upload_says_otherwise(
        self, make_app: Callable[..., Flask]
    ) -> None:
        client = make_app(BROKER_PUBLIC_KINDS="profile,cover").test_client()
        assert upload_with(client, kind="profile").image["visibility"] == "public"
        assert upload_with(client, kind="gallery").image["visibility"] == "private"
        said = upload_with(client, kind="profile", visibility="private").image
        assert said["visibility"] == "private" and said["public_url"] is None
        # The kind that counts is the one confirm records: decided there, not at presign.
        grant = presign(client, png_bytes(), kind="gallery")
        assert confirmed(client, grant["key"], kind="cover")["visibility"] == "public"
        grant = presign(client, png_bytes(), kind="gallery", visibility="private")
        assert confirmed(client, grant["key"], kind="cover")["visibility"] == "private"
        config = client.get("/config", headers=auth()).json
        assert config["public_kinds"] == ["profile", "cover"]

    def test_public_kinds_must_be_kinds(self) -> None:
        with pytest.raises(ConfigError, match=r"BROKER_PUBLIC_KINDS.*avatar"):
            load_settings({"BROKER_ENV": "test", "BROKER_PUBLIC_KINDS": "profile,avatar"})

    @pytest.mark.parametrize("value", ["PUBLIC", "unlisted", "", True, None, ["public"], 1])
    def test_only_private_or_public(
        self, client: FlaskClient, upload: Uploader, value: Any
    ) -> None:
        image = upload().image
        attempts = [
            client.post(
                "/images/presign-upload", json=presign_body(visibility=value), headers=auth()
            ),
            client.post("/images", json={"key": image["key"], "visibility": value}, headers=auth()),
            client.patch(f"/images/{image['id']}", json={"visibility": value}, headers=auth()),
        ]
        for response in attempts:
            assert response.status_code == 400, response.json
            assert "visibility" in response.json["error"]["details"]
        assert client.get(f"/images/{image['id']}", headers=auth()).json["image"] == image


class TestVisibilityByPatch:
    def test_a_link_lives_while_public_and_each_public_spell_has_its_own(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        first = set_visibility(client, image["id"], "public")
        old = token_of(first)
        assert client.get(f"/p/{old}").status_code == 302
        # Public again: nothing changes, the link stays the same.
        assert token_of(set_visibility(client, image["id"], "public")) == old
        private = set_visibility(client, image["id"], "private")
        assert private["visibility"] == "private" and private["public_url"] is None
        assert client.get(f"/p/{old}").status_code == 404
        again = set_visibility(client, image["id"], "public")
        new = token_of(again)
        assert new != old
        assert client.get(f"/p/{new}").status_code == 302
        assert client.get(f"/p/{old}").status_code == 404  # the old one stays dead
        stored = broker_of(client.application).db.images.collection.find_one({})
        assert stored is not None and stored["public_token"] == new

    def test_a_private_image_holds_no_token_at_all(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(visibility="public").image
        set_visibility(client, image["id"], "private")
        stored = broker_of(client.application).db.images.collection.find_one({})
        assert stored is not None and "public_token" not in stored

    def test_with_other_fields_at_once_and_values_stay_literal(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        response = client.patch(
            f"/images/{image['id']}",
            json={"visibility": "public", "caption": "$owner", "tags": ["$key", "b"]},
            headers=auth(),
        )
        assert response.status_code == 200
        changed = response.json["image"]
        # Dollar-prefixed values are data, never field paths of the update.
        assert changed["caption"] == "$owner" and changed["tags"] == ["$key", "b"]
        assert changed["visibility"] == "public" and token_of(changed)

    def test_tokens_are_fresh_randomness_not_the_id(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        tokens = {token_of(upload(visibility="public").image) for _ in range(5)}
        assert len(tokens) == 5
        image = upload().image
        for _ in range(3):
            tokens.add(token_of(set_visibility(client, image["id"], "public")))
            set_visibility(client, image["id"], "private")
        assert len(tokens) == 8
        assert not any(image["id"] in token for token in tokens)

    def test_public_url_is_in_every_answer_about_the_image(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(visibility="public").image
        url = image["public_url"]
        id_ = image["id"]
        answers = [
            client.get(f"/images/{id_}", headers=auth()).json["image"],
            client.patch(f"/images/{id_}", json={"caption": "c"}, headers=auth()).json["image"],
            client.post(f"/images/{id_}/usage", headers=auth()).json["image"],
            client.get("/images", headers=auth()).json["images"][0],
            client.get("/images?sign=1", headers=auth()).json["images"][0],
            client.get("/images?owner=alice", headers=auth("bob")).json["images"][0],
        ]
        assert [answer["public_url"] for answer in answers] == [url] * len(answers)


class TestPublicUrl:
    def test_built_on_the_configured_public_address(self, make_app: Callable[..., Flask]) -> None:
        app = make_app(BROKER_PUBLIC_URL="https://img.example.com/broker/")
        image = upload_with(app.test_client(), visibility="public").image
        assert image["public_url"] == f"https://img.example.com/broker/p/{token_of(image)}"

    def test_else_on_the_host_the_client_asked(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload(visibility="public").image
        response = client.get(
            f"/images/{image['id']}", headers=auth(), base_url="https://cdn.example:8443/app"
        )
        assert response.json["image"]["public_url"] == (
            f"https://cdn.example:8443/app/p/{token_of(image)}"
        )

    def test_forwarded_headers_count_only_from_trusted_proxies(
        self, make_app: Callable[..., Flask]
    ) -> None:
        forwarded = {"X-Forwarded-Host": "photos.example", "X-Forwarded-Proto": "https"}
        for trusted, expected in (("0", "http://localhost/p/"), ("1", "https://photos.example/p/")):
            client = make_app(BROKER_TRUSTED_PROXIES=trusted).test_client()
            image = upload_with(client, visibility="public").image
            again = client.get(f"/images/{image['id']}", headers={**auth(), **forwarded})
            assert again.json["image"]["public_url"] == expected + token_of(image), trusted


def remaining_lifetime(location: str, now: datetime) -> float:
    """Seconds the signed URL ``location`` has left at ``now`` (from its own signature)."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return (signed_at - now).total_seconds() + int(query["X-Amz-Expires"])


def max_age(response: TestResponse) -> int:
    match = re.fullmatch(r"public, max-age=(\d+)", response.headers["Cache-Control"])
    assert match, response.headers["Cache-Control"]
    return int(match.group(1))


class TestPublicLink:
    def test_redirects_without_a_token_to_a_signed_get_of_the_image(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(visibility="public", filename="holiday.png").image
        response = client.get(f"/p/{token_of(image)}")
        assert response.status_code == 302
        location = response.headers["Location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert urlsplit(location).path.endswith(image["key"])
        assert query["response-content-type"] == "image/png"
        assert query["response-content-disposition"] == 'inline; filename="holiday.png"'
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert 0 < max_age(response) <= remaining_lifetime(location, datetime.now(UTC))
        # Cache-stable: the same URL all window long, as every other signing form gives.
        assert client.get(f"/p/{token_of(image)}").headers["Location"] == location
        signed = client.get(f"/images/{image['id']}/signed-url", headers=auth("bob")).json
        assert signed["url"] == location

    @pytest.mark.parametrize(
        ("settings", "bound"),
        [
            ({}, 60),  # BROKER_PUBLIC_LINK_MAX_AGE's default
            ({"BROKER_PUBLIC_LINK_MAX_AGE": "86400"}, None),  # then the URL's own expiry bounds
            ({"BROKER_SIGNED_URL_WINDOW": "0", "BROKER_DOWNLOAD_EXPIRES": "30"}, None),
            ({"BROKER_SIGNED_URL_WINDOW": "0", "BROKER_DOWNLOAD_EXPIRES": "5"}, 0),
        ],
    )
    def test_the_redirect_is_never_cached_past_the_urls_expiry(
        self, make_app: Callable[..., Flask], settings: dict[str, str], bound: int | None
    ) -> None:
        client = make_app(**settings).test_client()
        image = upload_with(client, visibility="public").image
        before = datetime.now(UTC).replace(microsecond=0)
        response = client.get(f"/p/{token_of(image)}")
        assert response.status_code == 302
        left = remaining_lifetime(response.headers["Location"], before)
        assert max_age(response) <= left - 5, (max_age(response), left)
        if bound is not None:
            assert max_age(response) <= bound
        if bound == 0:
            assert max_age(response) == 0

    def test_head_answers_like_get(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload(visibility="public").image
        head = client.head(f"/p/{token_of(image)}")
        assert head.status_code == 302 and head.headers["Location"].startswith("http")

    def test_parameters_other_than_variant_are_ignored(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(visibility="public").image
        plain = client.get(f"/p/{token_of(image)}")
        tracked = client.get(f"/p/{token_of(image)}?utm_source=mail&fbclid=x&v=2")
        assert tracked.status_code == 302
        assert tracked.headers["Location"] == plain.headers["Location"]

    @pytest.mark.parametrize("variant", ["huge", "x" * 65, ""])
    def test_an_unknown_variant_is_400(
        self, client: FlaskClient, upload: Uploader, variant: str
    ) -> None:
        image = upload(visibility="public").image
        response = client.get(f"/p/{token_of(image)}", query_string={"variant": variant})
        assert response.status_code == 400
        assert response.json["error"]["code"] == "validation_error"
        assert list(response.json["error"]["details"]) == ["variant"]
        assert response.headers["Cache-Control"] == "no-store"

    def test_errors_are_the_envelope_and_never_cached(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(visibility="public").image
        for path in (f"/p/{'A' * 43}", "/p/nope", f"/p/{image['id']}"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json["error"]["code"] == "not_found"
            assert response.headers["Cache-Control"] == "no-store"
        refused = client.post(f"/p/{token_of(image)}")
        assert refused.status_code == 405 and refused.json["error"]["code"] == "method_not_allowed"

    def test_dies_when_the_image_is_deleted_or_being_deleted(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        deleted = upload(visibility="public").image
        assert client.get(f"/p/{token_of(deleted)}").status_code == 302
        assert client.delete(f"/images/{deleted['id']}", headers=auth()).status_code == 204
        assert client.get(f"/p/{token_of(deleted)}").status_code == 404
        # A delete whose bucket half failed leaves a tombstone: its link is dead already.
        tombstoned = upload(visibility="public").image
        images = broker_of(client.application).db.images
        assert images.mark_deleting(tombstoned["id"], Principal("alice"), datetime.now(UTC))
        assert client.get(f"/p/{token_of(tombstoned)}").status_code == 404

    def test_the_access_log_never_names_the_token(
        self, client: FlaskClient, upload: Uploader, caplog: pytest.LogCaptureFixture
    ) -> None:
        token = token_of(upload(visibility="public").image)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="broker"):
            assert client.get(f"/p/{token}").status_code == 302
            assert client.get(f"/p/{token[::-1]}").status_code == 404
        lines = [record for record in caplog.records if record.name == "broker.access"]
        assert [line.path for line in lines] == ["/p/<token>"] * 2  # type: ignore[attr-defined]
        assert token not in caplog.text and token[::-1] not in caplog.text

    def test_is_limited_per_client_address(self, make_app: Callable[..., Flask]) -> None:
        client = make_app(BROKER_RATE_LIMIT_PUBLIC="3/minute").test_client()
        token = token_of(upload_with(client, visibility="public").image)
        here = {"REMOTE_ADDR": "192.0.2.1"}
        answers = [client.get(f"/p/{token}", environ_base=here).status_code for _ in range(4)]
        assert answers == [302, 302, 302, 429]
        limited = client.get(f"/p/{token}", environ_base=here)
        assert limited.json["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Another address has its own budget; a signed-in user's budget is another one still.
        assert (
            client.get(f"/p/{token}", environ_base={"REMOTE_ADDR": "192.0.2.2"}).status_code == 302
        )
        assert client.get("/images", headers=auth(), environ_base=here).status_code == 200


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TTL = 5


@pytest.fixture
def two_processes(make_app: Callable[..., Flask]) -> tuple[FlaskClient, FlaskClient, FakeClock]:
    """Two apps on one database and bucket, as two processes are: A, and B whose lookup cache
    ages by a fake clock (``BROKER_LOOKUP_CACHE_TTL`` = 5 s in both)."""
    a = make_app(BROKER_LOOKUP_CACHE_TTL=str(TTL))
    b = make_app(BROKER_LOOKUP_CACHE_TTL=str(TTL))
    clock = FakeClock()
    services = broker_of(b)
    cache = LookupCache(services.settings.lookup_cache_size, TTL, clock=clock)
    extension.init_app(b, replace(services, lookups=cache))
    return a.test_client(), b.test_client(), clock


def b_answers(b: FlaskClient, image: dict[str, Any], token: str) -> dict[str, int | list[str]]:
    """What B answers bob (a stranger to alice's image) for each signing form, and the link."""
    batch = b.post("/images/signed-urls", json={"ids": [image["id"]]}, headers=auth("bob"))
    return {
        "by-id": b.get(f"/images/{image['id']}/signed-url", headers=auth("bob")).status_code,
        "content": b.get(f"/images/{image['id']}/content", headers=auth("bob")).status_code,
        "batch": list(batch.json["urls"]),
        "link": b.get(f"/p/{token}").status_code,
    }


SIGNS = {"by-id": 200, "content": 302, "link": 302}
REFUSES = {"by-id": 404, "content": 404, "batch": [], "link": 404}


class TestTheLookupCacheBound:
    """A change on one process reaches the other's cache within BROKER_LOOKUP_CACHE_TTL."""

    def test_turned_private_on_a_stops_signing_for_others_on_b_within_the_ttl(
        self, two_processes: tuple[FlaskClient, FlaskClient, FakeClock]
    ) -> None:
        a, b, clock = two_processes
        image = upload_with(a, visibility="public").image
        token = token_of(image)
        assert b_answers(b, image, token) == {**SIGNS, "batch": [image["id"]]}  # B caches it
        set_visibility(a, image["id"], "private")
        # A forgot it at once; B may still sign from its cache until the TTL is over...
        assert {k: v for k, v in b_answers(a, image, token).items()} == REFUSES
        clock.now += TTL - 1
        assert b_answers(b, image, token) == {**SIGNS, "batch": [image["id"]]}
        # ...and not a moment after.
        clock.now += 1.5
        assert b_answers(b, image, token) == REFUSES
        # Its owner still gets it signed on B.
        assert b.get(f"/images/{image['id']}/signed-url", headers=auth()).status_code == 200

    def test_deleted_on_a_kills_the_link_on_b_within_the_ttl(
        self, two_processes: tuple[FlaskClient, FlaskClient, FakeClock]
    ) -> None:
        a, b, clock = two_processes
        image = upload_with(a, visibility="public").image
        token = token_of(image)
        assert b.get(f"/p/{token}").status_code == 302
        assert a.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
        assert a.get(f"/p/{token}").status_code == 404
        clock.now += TTL + 0.5
        assert b.get(f"/p/{token}").status_code == 404
        assert b.get(f"/images/{image['id']}/signed-url", headers=auth()).status_code == 404

    def test_public_again_on_a_leaves_the_old_link_dead_on_b(
        self, two_processes: tuple[FlaskClient, FlaskClient, FakeClock]
    ) -> None:
        a, b, clock = two_processes
        image = upload_with(a, visibility="public").image
        old = token_of(image)
        assert b.get(f"/p/{old}").status_code == 302
        set_visibility(a, image["id"], "private")
        new = token_of(set_visibility(a, image["id"], "public"))
        assert b.get(f"/p/{new}").status_code == 302  # never cached: B reads it at once
        clock.now += TTL + 0.5
        assert b.get(f"/p/{old}").status_code == 404
        assert b.get(f"/p/{new}").status_code == 302

    def test_in_one_process_a_change_counts_at_once(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(visibility="public").image
        token = token_of(image)
        assert b_answers(client, image, token) == {**SIGNS, "batch": [image["id"]]}
        set_visibility(client, image["id"], "private")
        assert b_answers(client, image, token) == REFUSES

    def test_a_reader_and_an_admin_still_sign_a_private_image(
        self, two_processes: tuple[FlaskClient, FlaskClient, FakeClock]
    ) -> None:
        a, b, clock = two_processes
        image = upload_with(a, visibility="public").image
        set_visibility(a, image["id"], "private")
        clock.now += TTL + 0.5
        for headers in (reader_auth(), auth("root", admin=True)):
            assert b.get(f"/images/{image['id']}/signed-url", headers=headers).status_code == 200


class TestListingIsIndexBacked:
    """Every list shape a caller can ask for walks one index in its sort order."""

    SHAPES: ClassVar[list[tuple[dict[str, str], dict[str, str]]]] = [
        (auth("root", admin=True), {}),  # everyone's
        (reader_auth(), {"owner": "alice"}),  # one owner's, all of them
        (auth(), {}),  # the caller's own
        (auth("bob"), {"owner": "alice"}),  # one owner's public ones
    ]

    @pytest.mark.parametrize("sort", list(SORTS))
    @pytest.mark.parametrize("kind", [None, "gallery"])
    @pytest.mark.parametrize("shape", range(4))
    def test_each_page_query_is_an_index_range(
        self,
        client: FlaskClient,
        upload: Uploader,
        monkeypatch: pytest.MonkeyPatch,
        sort: str,
        kind: str | None,
        shape: int,
    ) -> None:
        for _ in range(3):
            upload(visibility="public")
        headers, asked = self.SHAPES[shape]
        query = {**asked, "sort": sort, "limit": "1", **({"kind": kind} if kind else {})}
        collection = broker_of(client.application).db.images.collection
        # Each query the page runs, as run: its filter and the cursor (sort, limit, hint).
        runs: list[tuple[dict[str, Any], Any]] = []
        real_find = collection.find

        def spy(filter: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            cursor = real_find(filter, *args, **kwargs)
            runs.append((filter, cursor))
            return cursor

        cursor_value = client.get("/images", query_string=query, headers=headers).json[
            "next_cursor"
        ]
        monkeypatch.setattr(collection, "find", spy)
        page = client.get(
            "/images", query_string={**query, "cursor": cursor_value}, headers=headers
        )
        assert page.status_code == 200 and len(page.json["images"]) == 1
        assert runs
        for filter, cursor in runs:
            equality = [
                name
                for name, value in filter.items()
                if name in ("owner", "visibility", "kind") and not isinstance(value, dict)
            ]
            narrowed = tuple(name for name in ("owner", "visibility") if name in equality)
            assert narrowed in LIST_SCOPES
            expected = dict(list_index_keys(sort, narrowed, by_kind="kind" in equality))
            # explain() runs the cursor's own query again: the plan the page's query had.
            assert index_walked(cursor.explain()) == expected, filter


def index_walked(explained: dict[str, Any]) -> dict[str, int]:
    """The key pattern of the index a plan scans (the first IXSCAN found in it)."""
    stage = explained["queryPlanner"]["winningPlan"]
    while stage.get("stage") != "IXSCAN":
        assert "inputStage" in stage, explained["queryPlanner"]["winningPlan"]
        stage = stage["inputStage"]
    return dict(stage["keyPattern"])


def test_a_missing_list_index_slows_a_listing_but_never_fails_it(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    # A database of its own: dropping an index of the shared one would outlive the test.
    client = make_app(BROKER_MONGODB_DB=own_database).test_client()
    public = upload_with(client, visibility="public").image
    upload_with(client)
    broker_of(client.application).db.images.collection.drop_index("list_owner_visibility_newest")
    response = client.get("/images", query_string={"owner": "alice"}, headers=auth("bob"))
    assert response.status_code == 200
    assert [image["id"] for image in response.json["images"]] == [public["id"]]


class TestMultipartUploads:
    """Large uploads in parts share the presign body and its rules: visibility, and readers."""

    @pytest.fixture
    def api(self, make_app: Callable[..., Flask]) -> FlaskClient:
        return make_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES).test_client()

    def test_visibility_given_at_create_is_the_completed_images(self, api: FlaskClient) -> None:
        flow = Multipart(api, padded_png(6 * MiB)).created(part_size=5 * MiB, visibility="public")
        flow.send()
        completed = flow.complete()
        assert completed.status_code == 201, completed.json
        image = completed.json["image"]
        assert image["visibility"] == "public"
        assert api.get(f"/p/{token_of(image)}").status_code == 302

    def test_a_reader_takes_no_step_of_an_upload(self, api: FlaskClient) -> None:
        data = padded_png(6 * MiB)
        # The reader token's sub is the uploader's own: the role, not the owner, refuses.
        flow = Multipart(api, data, sub="app-backend").created(part_size=5 * MiB)
        etags = flow.send()
        listed = [{"part_number": n, "etag": etag} for n, etag in sorted(etags.items())]
        reader = reader_auth("app-backend")
        path = f"/images/multipart/{flow.upload_id}"
        md5 = {"part_number": 1, "content_md5": md5_b64(flow.parts[1])}
        attempts = [
            api.post("/images/multipart", json=presign_body(data), headers=reader),
            api.post(f"{path}/parts", json={"parts": [md5]}, headers=reader),
            api.get(f"{path}/parts", headers=reader),
            api.post(f"{path}/complete", json={"parts": listed}, headers=reader),
            api.delete(path, headers=reader),
        ]
        for answer in attempts:
            assert answer.status_code == 403, answer.json
            assert answer.json["error"]["code"] == "forbidden"
        # Nothing changed: the owner's upload goes on and completes.
        assert flow.complete().status_code == 201
