"""Signed GET URLs: by id, by key, in batches, as a redirect; lifetime and response headers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from flask_jwt_extended import decode_token

import broker.auth as broker_auth
import broker.domain as broker_domain
from tests.support.apps import broker_of
from tests.support.s3 import signed_until, signed_window
from tests.support.tokens import auth, make_token
from tests.support.upload import Flow, Uploader


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def lifetime(body: dict[str, Any]) -> float:
    return (datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC)).total_seconds()


class TestById:
    def test_default_url_is_cache_stable_inline_and_names_the_file(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(filename="Ünïcode name.png").image
        response = client.get(f"/images/{image['id']}/signed-url", headers=auth())
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        query = query_of(response.json["url"])
        # Cache-stable: signed at the hour, valid for the rest of the window plus 300 s.
        assert query["X-Amz-Expires"] == str(3600 - 300 + 300)
        assert query["response-content-type"] == "image/png"
        assert query["response-content-disposition"] == (
            "inline; filename=\"Unicode name.png\"; filename*=UTF-8''%C3%9Cn%C3%AFcode%20name.png"
        )
        assert 295 < lifetime(response.json) <= 3600

    def test_attachment_and_custom_lifetime(self, client: FlaskClient, upload: Uploader) -> None:
        uploaded = upload(filename="a.png")
        response = client.get(
            f"/images/{uploaded.image['id']}/signed-url?expires_in=60&disposition=attachment",
            headers=auth(),
        )
        query = query_of(response.json["url"])
        assert query["X-Amz-Expires"] == "3600"
        assert query["response-content-disposition"] == 'attachment; filename="a.png"'
        fetched = requests.get(response.json["url"], timeout=10)
        assert fetched.content == uploaded.data
        assert fetched.headers["Content-Disposition"] == 'attachment; filename="a.png"'

    def test_lifetime_is_clamped_to_the_maximum(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        response = client.get(f"/images/{image['id']}/signed-url?expires_in=999999", headers=auth())
        assert query_of(response.json["url"])["X-Amz-Expires"] == "3600"
        assert 3590 < lifetime(response.json) <= 3600

    def test_bad_parameters_are_400(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        for query in (
            "expires_in=0",
            "expires_in=-5",
            "expires_in=abc",
            "expires_in=1.5",
            "disposition=evil",
        ):
            response = client.get(f"/images/{image['id']}/signed-url?{query}", headers=auth())
            assert response.status_code == 400, query
            assert response.json["error"]["code"] == "validation_error"

    def test_someone_elses_image_is_404(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        assert (
            client.get(f"/images/{image['id']}/signed-url", headers=auth("bob")).status_code == 404
        )


class TestByKey:
    def test_found_by_key(self, client: FlaskClient, upload: Uploader) -> None:
        uploaded = upload()
        response = client.get(
            "/images/signed-url", query_string={"key": uploaded.image["key"]}, headers=auth()
        )
        assert response.status_code == 200
        assert requests.get(response.json["url"], timeout=10).content == uploaded.data

    def test_unknown_or_foreign_key_is_404_and_key_is_required(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        key = upload().image["key"]
        assert (
            client.get(
                "/images/signed-url", query_string={"key": key}, headers=auth("bob")
            ).status_code
            == 404
        )
        assert (
            client.get("/images/signed-url?key=alice/none.png", headers=auth()).status_code == 404
        )
        assert client.get("/images/signed-url", headers=auth()).status_code == 400


class TestBatch:
    def test_visible_ids_only(self, client: FlaskClient, upload: Uploader) -> None:
        mine = [upload().image["id"], upload().image["id"]]
        theirs = upload(sub="bob").image["id"]
        response = client.post(
            "/images/signed-urls", json={"ids": [*mine, theirs, "garbage", mine[0]]}, headers=auth()
        )
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        urls = response.json["urls"]
        assert sorted(urls) == sorted(mine)
        assert all(set(entry) == {"url", "expires_at", "variant"} for entry in urls.values())
        assert all(entry["variant"] == "original" for entry in urls.values())

    def test_admin_gets_all(self, client: FlaskClient, upload: Uploader) -> None:
        ids = [upload().image["id"], upload(sub="bob").image["id"]]
        response = client.post(
            "/images/signed-urls", json={"ids": ids}, headers=auth("root", admin=True)
        )
        assert sorted(response.json["urls"]) == sorted(ids)

    def test_a_batch_takes_1_to_100_ids_and_refuses_other_bodies(self, client: FlaskClient) -> None:
        bodies: list[dict[str, Any]] = [
            {"ids": []},
            {"ids": ["x"] * 101},
            {"ids": "x"},
            {},
            {"ids": [1]},
        ]
        for body in bodies:
            response = client.post("/images/signed-urls", json=body, headers=auth())
            assert response.status_code == 400, body
        ok = client.post("/images/signed-urls", json={"ids": ["x"] * 100}, headers=auth())
        assert ok.status_code == 200 and ok.json == {"urls": {}}

    def test_a_bad_batch_is_refused_in_the_schemas_own_words(self, client: FlaskClient) -> None:
        # The body is checked in one pass (schemas.plain_load); what it refuses must still read
        # exactly as marshmallow words it: every problem, each id's by its index.
        length = "Length must be between 1 and 64."
        refusals: list[tuple[Any, dict[str, Any]]] = [
            (
                {"ids": [1, "a", None, "", "x" * 65]},
                {
                    "ids": {
                        "0": ["Not a valid string."],
                        "2": ["Field may not be null."],
                        "3": [length],
                        "4": [length],
                    }
                },
            ),
            ({"ids": ["a", "x" * 65]}, {"ids": {"1": [length]}}),
            (
                {"extra": 1, "ids": []},
                {
                    "ids": ["Length must be between 1 and 100."],
                    "extra": ["Unknown field."],
                },
            ),
            ({"ids": ["a"], "variant": None}, {"variant": ["Field may not be null."]}),
            ({"variant": "thumb"}, {"ids": ["Missing data for required field."]}),
        ]
        for body, details in refusals:
            response = client.post("/images/signed-urls", json=body, headers=auth())
            assert response.status_code == 400, body
            assert response.json["error"]["code"] == "validation_error"
            assert response.json["error"]["details"] == details
            assert list(response.json["error"]["details"]) == list(details)  # in the same order
        message = client.post("/images/signed-urls", json=refusals[2][0], headers=auth()).json[
            "error"
        ]["message"]
        assert message == "extra: Unknown field.; ids: Length must be between 1 and 100."


class TestContent:
    def test_redirects_to_a_fresh_signed_url(self, client: FlaskClient, upload: Uploader) -> None:
        uploaded = upload()
        response = client.get(f"/images/{uploaded.image['id']}/content", headers=auth())
        assert response.status_code == 302
        assert response.headers["Cache-Control"] == "no-store"
        assert "X-Amz-Signature=" in response.headers["Location"]
        assert requests.get(response.headers["Location"], timeout=10).content == uploaded.data

    def test_someone_elses_is_404(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        assert client.get(f"/images/{image['id']}/content", headers=auth("bob")).status_code == 404


class TestCacheStable:
    def test_same_image_twice_in_a_window_gets_the_same_url(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        first = client.get(f"/images/{image['id']}/signed-url", headers=auth()).json
        second = client.get(f"/images/{image['id']}/signed-url", headers=auth()).json
        assert first == second
        query = query_of(first["url"])
        # Signed at the start of a 3300 s window (the 3600 s cap less the 300 s lifetime), for
        # window + lifetime: at least the lifetime from now, never more than the cap.
        assert query["X-Amz-Expires"] == "3600"
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert signed_at.timestamp() % 3300 == 0
        assert 299 <= lifetime(first) <= 3600

    def test_a_request_for_the_full_cap_is_signed_now(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        signed = client.get(
            f"/images/{image['id']}/signed-url?expires_in=3600", headers=auth()
        ).json
        assert query_of(signed["url"])["X-Amz-Expires"] == "3600"
        assert 3595 < lifetime(signed) <= 3600

    def test_window_zero_signs_now_for_the_lifetime(self, make_app: Any) -> None:
        flow = Flow(make_app(BROKER_SIGNED_URL_WINDOW="0"))
        client = flow.client
        image = flow.upload().image
        signed = client.get(f"/images/{image['id']}/signed-url", headers=auth()).json
        assert query_of(signed["url"])["X-Amz-Expires"] == "300"
        assert 295 < lifetime(signed) <= 300

    def test_cached_lookup_is_still_owner_checked_and_forgotten_on_delete(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        path = f"/images/{image['id']}/signed-url"
        assert client.get(path, headers=auth()).status_code == 200  # now cached
        assert client.get(path, headers=auth("bob")).status_code == 404
        assert client.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
        assert client.get(path, headers=auth()).status_code == 404


class TestListSigned:
    def test_sign_embeds_urls(self, client: FlaskClient, upload: Uploader) -> None:
        uploaded = upload()
        response = client.get("/images?sign=1", headers=auth())
        listed = response.json["images"][0]
        assert response.headers["Cache-Control"] == "no-store"
        assert requests.get(listed["url"], timeout=10).content == uploaded.data
        assert listed["expires_at"].endswith("Z")
        plain = client.get("/images", headers=auth()).json["images"][0]
        assert "url" not in plain and "expires_at" not in plain
        assert client.get("/images?sign=yes", headers=auth()).status_code == 400


def test_boto3_signer_cannot_pin_time_so_it_signs_now(make_app: Any) -> None:
    flow = Flow(make_app(BROKER_SIGNER="boto3"))
    client = flow.client
    image = flow.upload().image
    signed = client.get(f"/images/{image['id']}/signed-url", headers=auth()).json
    # What the URL really allows is what expires_at says.
    assert signed_until(signed["url"]) == datetime.fromisoformat(signed["expires_at"])
    assert query_of(signed["url"])["X-Amz-Expires"] == "300"


def test_boto3_signer_announces_the_expiry_its_url_carries_across_a_second_boundary(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore signs at its own "now": when a second ticks between the broker reading the clock
    # and botocore signing, the URL lives a second longer than the broker's clock would say.
    # Here the broker's clock lags botocore's by a second, so every signing crosses a tick.
    flow = Flow(make_app(BROKER_SIGNER="boto3"))
    image = flow.upload().image
    lagging = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    monkeypatch.setattr(broker_domain, "utcnow", lambda: lagging)
    single = flow.client.get(f"/images/{image['id']}/signed-url", headers=auth()).json
    batch = flow.client.post(
        "/images/signed-urls", json={"ids": [image["id"]]}, headers=auth()
    ).json["urls"][image["id"]]
    listed = flow.client.get("/images?sign=1", headers=auth()).json["images"][0]
    for signed in (single, batch, listed):
        signed_at, _ = signed_window(signed["url"])
        assert signed_at > lagging  # the tick really was crossed
        assert datetime.fromisoformat(signed["expires_at"]) == signed_until(signed["url"])


def test_a_windowed_url_is_signed_once_per_window(
    app: Any, client: FlaskClient, upload: Uploader, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = upload().image
    bucket = broker_of(app).bucket
    calls: list[Any] = []
    real = bucket.presign_get

    def counting(*args: Any, **kwargs: Any) -> str:
        calls.append(args)
        return str(real(*args, **kwargs))

    monkeypatch.setattr(bucket, "presign_get", counting)
    path = f"/images/{image['id']}/signed-url"
    urls = {client.get(path, headers=auth()).json["url"] for _ in range(5)}
    batch = client.post("/images/signed-urls", json={"ids": [image["id"]]}, headers=auth()).json
    urls.add(batch["urls"][image["id"]]["url"])
    assert len(calls) == 1 and len(urls) == 1
    client.get(f"{path}?disposition=attachment", headers=auth())
    assert len(calls) == 2  # another disposition is another URL


def test_verified_tokens_are_remembered_until_they_expire(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real = decode_token  # what broker.auth calls

    def counting(token: str) -> Any:
        decoded.append(token)
        return real(token)

    monkeypatch.setattr(broker_auth, "decode_token", counting)
    token = {"Authorization": f"Bearer {make_token('alice', roles=[])}"}
    for _ in range(3):
        assert client.get("/images", headers=token).status_code == 200
    assert len(decoded) == 1
    short = {"Authorization": f"Bearer {make_token('alice', expires_in=1)}"}
    assert client.get("/images", headers=short).status_code == 200
    time.sleep(1.5)
    assert client.get("/images", headers=short).status_code == 401
