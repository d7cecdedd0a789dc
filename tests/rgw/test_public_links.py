"""Public links on a real S3 (Ceph RGW): the token-less redirect leads to a signed GET the
gateway serves, for as long as the image is public, and no longer.

Every request here is what a stranger's browser sends: no Authorization header, the link as
it was handed out (``public_url``), then the redirect's target straight from the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.images import png_bytes
from tests.support.tokens import auth
from tests.support.upload import upload as upload_flow

pytestmark = pytest.mark.s3

HTTP_TIMEOUT = 10
both_signers = pytest.mark.parametrize("signer", ("fast", "boto3"))


def upload(client: FlaskClient, data: bytes, **presign: Any) -> dict[str, Any]:
    """The whole flow for ``data`` as alice (presign → PUT to the gateway → confirm)."""
    return upload_flow(client, data, **presign).image


def link_path(image: dict[str, Any]) -> str:
    """The path of the image's public link (its ``public_url`` on this test client's host)."""
    url = urlsplit(str(image["public_url"]))
    assert url.scheme == "http" and url.netloc == "localhost", image["public_url"]
    return url.path


def follow(client: FlaskClient, path: str, **environ: str) -> TestResponse:
    """GET a public link as a stranger: no token, no cookies."""
    return client.get(path, environ_base=dict(environ))


def visibility(client: FlaskClient, image_id: str, value: str) -> dict[str, Any]:
    response = client.patch(f"/images/{image_id}", json={"visibility": value}, headers=auth())
    assert response.status_code == 200, response.json
    image: dict[str, Any] = response.json["image"]
    return image


def seconds_left(location: str, now: datetime) -> float:
    """What the signed URL itself says it has left at ``now``."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return (signed_at - now).total_seconds() + int(query["X-Amz-Expires"])


@both_signers
def test_a_tokenless_redirect_leads_to_the_bytes(api: FlaskClient) -> None:
    data = png_bytes(7, 5)
    image = upload(api, data, visibility="public")
    now = datetime.now(UTC).replace(microsecond=0)
    response = follow(api, link_path(image))
    assert response.status_code == 302
    assert response.headers["Referrer-Policy"] == "no-referrer"
    location = response.headers["Location"]
    fetched = requests.get(location, timeout=HTTP_TIMEOUT)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["Content-Disposition"] == 'inline; filename="photo.png"'
    # The redirect may be cached, publicly, but never past the URL it leads to.
    match = re.fullmatch(r"public, max-age=(\d+)", response.headers["Cache-Control"])
    assert match is not None, response.headers["Cache-Control"]
    assert 0 < int(match.group(1)) <= seconds_left(location, now)


def test_a_short_signed_url_bounds_the_redirects_max_age(
    make_rgw_app: Callable[..., Flask],
) -> None:
    # With no signing window the URL lives BROKER_DOWNLOAD_EXPIRES seconds: the redirect's
    # max-age stays below that, even when the link's own cap is a day.
    client = make_rgw_app(
        BROKER_SIGNED_URL_WINDOW="0",
        BROKER_DOWNLOAD_EXPIRES="40",
        BROKER_PUBLIC_LINK_MAX_AGE="86400",
    ).test_client()
    image = upload(client, png_bytes(), visibility="public")
    now = datetime.now(UTC).replace(microsecond=0)
    response = follow(client, link_path(image))
    age = int(response.headers["Cache-Control"].rpartition("=")[2])
    left = seconds_left(response.headers["Location"], now)
    assert 0 < age <= left <= 41, (age, left)
    assert requests.get(response.headers["Location"], timeout=HTTP_TIMEOUT).status_code == 200


def test_private_kills_the_link_and_public_again_makes_a_new_one(api: FlaskClient) -> None:
    data = png_bytes(3, 3)
    image = upload(api, data, visibility="public")
    old = link_path(image)
    assert follow(api, old).status_code == 302
    visibility(api, image["id"], "private")
    dead = follow(api, old)
    assert dead.status_code == 404 and dead.json["error"]["code"] == "not_found"
    assert "Location" not in dead.headers
    new = link_path(visibility(api, image["id"], "public"))
    assert new != old
    again = follow(api, new)
    assert again.status_code == 302
    assert requests.get(again.headers["Location"], timeout=HTTP_TIMEOUT).content == data
    assert follow(api, old).status_code == 404  # the old link stays dead


def test_delete_kills_the_link_and_the_object(api: FlaskClient, s3: Any, rgw_bucket: str) -> None:
    image = upload(api, png_bytes(), visibility="public")
    location = follow(api, link_path(image)).headers["Location"]
    assert api.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
    assert follow(api, link_path(image)).status_code == 404
    # A URL handed out before the delete finds nothing either: the object left the bucket.
    assert requests.get(location, timeout=HTTP_TIMEOUT).status_code == 404
    assert s3.list_objects_v2(Bucket=rgw_bucket).get("KeyCount", 0) == 0


def test_guessed_and_tampered_links_are_404(api: FlaskClient) -> None:
    image = upload(api, png_bytes(), visibility="public")
    path = link_path(image)
    token = path.rsplit("/", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for attempt in (
        f"/p/{flipped}",
        f"/p/{token.upper() if token.upper() != token else token.lower()}",
        f"/p/{token[:-1]}",
        f"/p/{token}A",
        f"/p/{image['id']}",
        f"/p/{'A' * 43}",
        f"/p/{token}/",
    ):
        response = follow(api, attempt)
        assert response.status_code == 404, attempt
        assert response.json["error"]["code"] == "not_found"
        assert "Location" not in response.headers
    assert follow(api, path).status_code == 302


def test_an_image_born_private_has_no_link_but_its_owner_signs_it(api: FlaskClient) -> None:
    # Born private: no link at all; the owner's own signed GET still works.
    image = upload(api, png_bytes())
    assert image["public_url"] is None
    signed = api.get(f"/images/{image['id']}/signed-url", headers=auth()).json["url"]
    assert requests.get(signed, timeout=HTTP_TIMEOUT).status_code == 200


def test_rate_limited_per_client_address(make_rgw_app: Callable[..., Flask]) -> None:
    client = make_rgw_app(BROKER_RATE_LIMIT_PUBLIC="2/minute").test_client()
    path = link_path(upload(client, png_bytes(), visibility="public"))
    first = {"REMOTE_ADDR": "198.51.100.7"}
    assert [follow(client, path, **first).status_code for _ in range(2)] == [302, 302]
    limited = follow(client, path, **first)
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["Cache-Control"] == "no-store"
    # Another address is not held back by the first one's budget.
    second = follow(client, path, REMOTE_ADDR="198.51.100.8")
    assert second.status_code == 302
    assert requests.get(second.headers["Location"], timeout=HTTP_TIMEOUT).status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_address_counts(
    make_rgw_app: Callable[..., Flask],
) -> None:
    client = make_rgw_app(
        BROKER_RATE_LIMIT_PUBLIC="1/minute", BROKER_TRUSTED_PROXIES="1"
    ).test_client()
    path = link_path(upload(client, png_bytes(), visibility="public"))
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def through_proxy(client_address: str) -> int:
        headers = {"X-Forwarded-For": client_address}
        return client.get(path, headers=headers, environ_base=proxy).status_code

    assert through_proxy("203.0.113.1") == 302
    assert through_proxy("203.0.113.1") == 429
    assert through_proxy("203.0.113.2") == 302  # another client behind the same proxy
