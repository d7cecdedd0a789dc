"""The broker's integrity promises, proven on a real S3 (Ceph RGW) through URLs the broker issued.

``test_rgw_enforces.py`` pins down what the gateway enforces on URLs boto3 signs. Here every URL
comes from the broker's own endpoints (``POST /images/presign-upload``,
``GET /images/<id>/signed-url``), and the tests that depend on the signature run with both
signers (``BROKER_SIGNER=fast``, the broker's own SigV4 code, and ``boto3``, the reference), so
the fast signer is proven against a server that really checks signatures. Each test looks at
real status codes, response headers and what the bucket and MongoDB hold afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
import requests
from botocore.exceptions import EndpointConnectionError
from flask import Flask
from flask.testing import FlaskClient

from broker.bucket_policy import apply_bucket_cors
from tests.support.apps import broker_of
from tests.support.envelope import api_error
from tests.support.images import md5_b64, png_bytes, png_claiming
from tests.support.rgw import both_signers, images_recorded, signed_get
from tests.support.s3 import (
    S3Endpoint,
    object_exists,
    query_params,
    replace_param,
    s3_error,
    signed_headers,
    signed_until,
    signed_window,
    sleep_past_expiry,
)
from tests.support.tokens import auth
from tests.support.upload import HTTP_TIMEOUT, confirm, presigned, put, upload

pytestmark = pytest.mark.s3

ALLOWED_ORIGINS = ("http://localhost:8000", "https://app.example")
OTHER_ORIGIN = "http://evil.example"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


# ---------------------------------------------------------------- helpers
def assert_grant_signs(grant: dict[str, Any], *required: str) -> None:
    """The PUT URL signs every header the grant tells the client to send, Content-Length (which
    the client's HTTP stack sets from the body) and the required ones; nothing else."""
    given = {name.lower() for name in grant["headers"]}
    assert sorted(signed_headers(grant["url"])) == sorted(given | {"content-length", "host"})
    assert set(required) <= given | {"content-length"}, (required, given)


def replace_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def flip_last_hex(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def flip_checksum(b64: str) -> str:
    return ("B" if b64[0] == "A" else "A") + b64[1:]


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00")


def run_cli(app: Flask, *args: str) -> dict[str, Any]:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    report: dict[str, Any] = json.loads(result.output)
    return report


def sweep(app: Flask) -> tuple[int, int]:
    """Run ``flask sweep``; (expired uploads, finished deletes) it reports."""
    report = run_cli(app, "sweep")
    return report["expired_uploads"], report["finished_deletes"]


def backdate_upload(app: Flask, key: str) -> None:
    """Move a pending upload's confirm deadline into the past (as if its time ran out)."""
    past = datetime.now(UTC) - timedelta(minutes=1)
    uploads = broker_of(app).db.uploads.collection
    assert uploads.update_one({"key": key}, {"$set": {"confirm_by": past}}).matched_count == 1


# ---------------------------------------------------------------- 1. presigned PUT
@both_signers
def test_presigned_put_pins_signature_type_length_md5_and_key(
    api: FlaskClient, rgw_app: Flask, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes(5, 4)
    grant = presigned(api, data)
    key, url = grant["key"], grant["url"]
    assert grant["method"] == "PUT"
    assert_grant_signs(grant, "content-type", "content-length", "content-md5")
    assert grant["headers"]["Content-Type"] == "image/png"
    assert grant["headers"]["Content-MD5"] == md5_b64(data)

    # the signature itself
    tampered = replace_param(
        url, "X-Amz-Signature", flip_last_hex(query_params(url)["X-Amz-Signature"])
    )
    assert s3_error(put(grant, data, url=tampered)) == (403, "SignatureDoesNotMatch")
    stretched = replace_param(url, "X-Amz-Expires", "604800")
    assert s3_error(put(grant, data, url=stretched)) == (403, "SignatureDoesNotMatch")

    # another type than the declared one, or none
    assert s3_error(put(grant, data, Content_Type="image/jpeg")) == (403, "SignatureDoesNotMatch")
    assert s3_error(put(grant, data, Content_Type="text/html")) == (403, "SignatureDoesNotMatch")
    assert s3_error(put(grant, data, Content_Type=None)) == (403, "SignatureDoesNotMatch")

    # another length than the declared one (the body's own length: Content-Length is signed)
    assert s3_error(put(grant, data[:-1])) == (403, "SignatureDoesNotMatch")
    assert s3_error(put(grant, data + b"\0")) == (403, "SignatureDoesNotMatch")

    # other bytes of the same length: the signed Content-MD5 no longer matches the body
    other = bytearray(data)
    other[-5] ^= 0xFF
    assert len(other) == len(data)
    assert s3_error(put(grant, bytes(other))) == (400, "BadDigest")
    # ... and the client cannot drop or change the Content-MD5 to match its bytes
    assert s3_error(put(grant, bytes(other), Content_MD5=md5_b64(bytes(other)))) == (
        403,
        "SignatureDoesNotMatch",
    )
    assert s3_error(put(grant, data, Content_MD5=None)) == (403, "SignatureDoesNotMatch")

    # the same query string on another key (another user's prefix, or next to the own key)
    parts = urlsplit(url)
    stolen = replace_path(url, parts.path.replace("/alice/", "/bob/"))
    sibling = replace_path(url, parts.path[:-4] + "0.png")
    assert stolen != url and sibling != url
    for elsewhere in (stolen, sibling):
        assert s3_error(put(grant, data, url=elsewhere)) == (403, "SignatureDoesNotMatch")
    assert s3.list_objects_v2(Bucket=rgw_bucket)["KeyCount"] == 0

    # nothing above reached the bucket; the grant as issued works, and confirm records it
    ok = put(grant, data)
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    head = s3.head_object(Bucket=rgw_bucket, Key=key)
    assert (head["ContentType"], head["ContentLength"]) == ("image/png", len(data))
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=rgw_bucket)["Contents"]] == [key]

    confirmed = confirm(api, key)
    assert confirmed.status_code == 201, confirmed.json
    image = confirmed.json["image"]
    assert (image["size"], image["width"], image["height"]) == (len(data), 5, 4)
    assert image["content_md5"] == md5_b64(data)
    assert image["etag"] == hashlib.md5(data).hexdigest()
    assert images_recorded(rgw_app) == 1


@both_signers
def test_presigned_put_without_md5_still_pins_type_and_length(
    make_rgw_app: Callable[..., Flask], signer: str, s3: Any, rgw_bucket: str
) -> None:
    # Only with the checksum rule relaxed for legacy clients (BROKER_REQUIRE_CHECKSUM=false).
    api = make_rgw_app(BROKER_SIGNER=signer, BROKER_REQUIRE_CHECKSUM="false").test_client()
    data = png_bytes()
    grant = presigned(api, data, omit=("content_md5",))
    assert_grant_signs(grant, "content-type", "content-length", "if-none-match")
    assert "content-md5" not in {name.lower() for name in grant["headers"]}
    assert s3_error(put(grant, data, Content_Type="image/gif")) == (403, "SignatureDoesNotMatch")
    assert s3_error(put(grant, data + b"\0")) == (403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert put(grant, data).status_code == 200
    assert confirm(api, grant["key"]).status_code == 201


@both_signers
def test_presigned_put_signs_the_sha256_checksum(
    api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    # RGW 16 does not enforce x-amz-checksum-sha256 (test_rgw_enforces.py shows it accepts a
    # wrong one), so the bucket cannot prove the broker's part here: what we can prove is that
    # the broker signs it and hands it to the client, so that a provider that enforces it will.
    data = png_bytes()
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    grant = presigned(api, data, checksum_sha256=checksum)
    assert_grant_signs(grant, "content-type", "content-length", "content-md5")
    assert "x-amz-checksum-sha256" in signed_headers(grant["url"])
    assert grant["headers"]["x-amz-checksum-sha256"] == checksum
    # the value is signed: the client cannot swap it for another
    other = put(grant, data, **{"x-amz-checksum-sha256": flip_checksum(checksum)})
    assert s3_error(other) == (403, "SignatureDoesNotMatch")
    assert put(grant, data).status_code == 200
    assert confirm(api, grant["key"]).status_code == 201


@both_signers
def test_expired_put_and_get_urls_are_refused(
    make_rgw_app: Callable[..., Flask], signer: str, s3: Any, rgw_bucket: str
) -> None:
    # no signing window: a GET URL asked for 1 s is signed now for 1 s
    app = make_rgw_app(BROKER_SIGNER=signer, BROKER_SIGNED_URL_WINDOW="0")
    short = make_rgw_app(BROKER_SIGNER=signer, BROKER_UPLOAD_EXPIRES="1")
    api, short_api = app.test_client(), short.test_client()
    image = upload(api).image

    data = png_bytes()
    grant = presigned(short_api, data)
    get_url = signed_get(api, image["id"], expires_in=1)
    assert query_params(grant["url"])["X-Amz-Expires"] == "1"
    assert query_params(get_url)["X-Amz-Expires"] == "1"
    # the expiry the API announces is the one the signature carries
    assert parse_time(grant["expires_at"]) == signed_until(grant["url"])

    sleep_past_expiry(grant["url"])
    sleep_past_expiry(get_url)
    assert s3_error(put(grant, data)) == (403, "AccessDenied")
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert s3_error(requests.get(get_url, timeout=HTTP_TIMEOUT)) == (403, "AccessDenied")
    # a fresh URL for the same image still works: the expiry, nothing else, refused it
    fresh = requests.get(signed_get(api, image["id"]), timeout=HTTP_TIMEOUT)
    assert fresh.status_code == 200


# ---------------------------------------------------------------- 2. signed GET
@both_signers
def test_signed_get_serves_the_bytes_with_pinned_type_and_disposition(
    api: FlaskClient, rgw: S3Endpoint, rgw_bucket: str
) -> None:
    data = png_bytes(6, 2)
    image = upload(api, data, filename="holiday photo.png").image
    url = signed_get(api, image["id"])
    assert query_params(url)["response-content-type"] == "image/png"
    assert (
        query_params(url)["response-content-disposition"] == 'inline; filename="holiday photo.png"'
    )
    assert {"host"} == set(signed_headers(url))

    resp = requests.get(url, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.content == data
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == 'inline; filename="holiday photo.png"'
    assert resp.headers["ETag"].strip('"') == image["etag"]

    attachment = requests.get(
        signed_get(api, image["id"], disposition="attachment"), timeout=HTTP_TIMEOUT
    )
    assert attachment.status_code == 200
    assert attachment.content == data
    assert attachment.headers["Content-Disposition"] == 'attachment; filename="holiday photo.png"'

    # the redirecting endpoint lands on the same kind of URL
    redirect = api.get(f"/images/{image['id']}/content", headers=auth("alice"))
    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith(f"{rgw.endpoint_url}/{rgw_bucket}/")
    followed = requests.get(redirect.headers["Location"], timeout=HTTP_TIMEOUT)
    assert (followed.status_code, followed.content) == (200, data)


@both_signers
def test_signed_get_lives_as_asked_never_past_the_cap_and_expires_as_announced(
    api: FlaskClient,
) -> None:
    # Whatever the signing window (URLs signed at the start of a window, for caching), a URL
    # lives at least as long as asked, never longer than the cap (BROKER_DOWNLOAD_MAX_EXPIRES,
    # 1 hour by default), and stops working exactly when the API's expires_at says.
    data = png_bytes()
    image = upload(api, data).image
    for asked in (60, 3600, 10**6):
        resp = api.get(
            f"/images/{image['id']}/signed-url",
            query_string={"expires_in": asked},
            headers=auth("alice"),
        )
        assert resp.status_code == 200, resp.json
        signed_at, lifetime = signed_window(resp.json["url"])
        valid_until = signed_at + timedelta(seconds=lifetime)
        assert lifetime <= 3600, asked
        assert valid_until == parse_time(resp.json["expires_at"]), resp.json["url"]
        asked_until = datetime.now(UTC) + timedelta(seconds=min(asked, 3600))
        assert valid_until >= asked_until - timedelta(seconds=2), asked
        assert requests.get(resp.json["url"], timeout=HTTP_TIMEOUT).content == data


@both_signers
def test_signed_get_refuses_altered_response_overrides_and_other_keys(
    api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    victim = upload(api, png_bytes(), sub="bob").image
    image = upload(api, png_bytes(3, 3), filename="mine.png").image
    url = signed_get(api, image["id"])
    # replace_param re-encodes a value exactly as both signers do: unchanged, the URL still works
    same = replace_param(url, "response-content-type", query_params(url)["response-content-type"])
    assert same == url
    assert requests.get(same, timeout=HTTP_TIMEOUT).status_code == 200

    altered = [
        replace_param(url, "response-content-type", "text/html"),
        replace_param(url, "response-content-type", None),
        replace_param(url, "response-content-disposition", 'attachment; filename="invoice.html"'),
        replace_param(url, "response-content-disposition", None),
        replace_param(url, "X-Amz-Signature", flip_last_hex(query_params(url)["X-Amz-Signature"])),
        replace_param(url, "X-Amz-Expires", "604800"),
        # the same signature on someone else's object
        replace_path(url, "/" + rgw_bucket + "/" + victim["key"]),
        # a cache-control override the signature never covered
        url + "&response-cache-control=public%2C%20max-age%3D31536000",
    ]
    for bad in altered:
        resp = requests.get(bad, timeout=HTTP_TIMEOUT)
        assert s3_error(resp) == (403, "SignatureDoesNotMatch"), bad
        assert "Content-Disposition" not in resp.headers

    # a GET URL is not a PUT URL
    overwrite = requests.put(
        url, data=b"x", headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT
    )
    assert s3_error(overwrite) == (403, "SignatureDoesNotMatch")
    assert s3.head_object(Bucket=rgw_bucket, Key=image["key"])["ContentLength"] == image["size"]


def test_private_bucket_refuses_unsigned_requests(
    api: FlaskClient, rgw: S3Endpoint, s3: Any, rgw_bucket: str
) -> None:
    image = upload(api).image
    base = f"{rgw.endpoint_url}/{rgw_bucket}"
    assert s3_error(requests.get(f"{base}/{image['key']}", timeout=HTTP_TIMEOUT)) == (
        403,
        "AccessDenied",
    )
    assert requests.head(f"{base}/{image['key']}", timeout=HTTP_TIMEOUT).status_code == 403
    assert s3_error(requests.get(base, timeout=HTTP_TIMEOUT)) == (403, "AccessDenied")
    unsigned_put = requests.put(
        f"{base}/alice/planted.png",
        data=png_bytes(),
        headers={"Content-Type": "image/png"},
        timeout=HTTP_TIMEOUT,
    )
    assert s3_error(unsigned_put) == (403, "AccessDenied")
    overwrite = requests.put(
        f"{base}/{image['key']}", data=b"x", headers={"Content-Type": "image/png"}, timeout=10
    )
    assert s3_error(overwrite) == (403, "AccessDenied")
    assert not object_exists(s3, rgw_bucket, "alice/planted.png")
    assert s3.head_object(Bucket=rgw_bucket, Key=image["key"])["ContentLength"] == image["size"]
    acl = s3.get_object_acl(Bucket=rgw_bucket, Key=image["key"])
    assert all(g["Grantee"].get("URI") != ALL_USERS for g in acl["Grants"])


def harden(app: Flask) -> None:
    """``flask block-public-access``, as the README tells operators to run once."""
    result = app.test_cli_runner().invoke(args=["block-public-access"])
    assert result.exit_code == 0, (result.output, result.exception)


# RGW 16 applies x-amz-acl / x-amz-grant-* headers that a presigned PUT did not sign (see
# test_rgw_enforces.py): on RGW the holder of an upload grant chooses the object's ACL unless
# the URL signs one or the bucket ignores public ACLs.
@both_signers
def test_a_hardened_bucket_takes_the_grant_but_no_smuggled_public_acl(
    api: FlaskClient, rgw_app: Flask, rgw: S3Endpoint, s3: Any, rgw_bucket: str
) -> None:
    harden(rgw_app)
    data = png_bytes()
    grant = presigned(api, data)
    ok = put(grant, data)
    assert ok.status_code == 200, f"the hardened bucket refuses the grant: {s3_error(ok)}"

    resp = put(grant, data, **{"x-amz-acl": "public-read"})
    assert resp.status_code in (200, 400, 403), resp.text  # refused, or stored and ignored
    public = f"{rgw.endpoint_url}/{rgw_bucket}/{grant['key']}"
    assert requests.get(public, timeout=HTTP_TIMEOUT).status_code == 403
    assert confirm(api, grant["key"]).status_code == 201


@both_signers
def test_a_smuggled_acl_grant_cannot_publish_or_wedge_the_upload(
    api: FlaskClient, rgw_app: Flask, rgw: S3Endpoint, s3: Any, rgw_bucket: str
) -> None:
    # x-amz-grant-read replaces the whole object ACL: on a hardened RGW 16 bucket the public
    # grant is ignored, but the owner's own grant is gone too, so the broker's HEAD gets 403.
    harden(rgw_app)
    data = png_bytes()
    grant = presigned(api, data)
    resp = put(grant, data, **{"x-amz-grant-read": f'uri="{ALL_USERS}"'})
    assert resp.status_code in (200, 400, 403), resp.text
    public = f"{rgw.endpoint_url}/{rgw_bucket}/{grant['key']}"
    assert requests.get(public, timeout=HTTP_TIMEOUT).status_code in (403, 404)

    # whatever the bucket kept, confirm must settle the upload: record it, or reject and delete
    # it. "S3 unavailable, retry later" is wrong: S3 answers, and no retry can ever succeed.
    confirmed = confirm(api, grant["key"])
    assert confirmed.status_code in (201, 422), confirmed.json
    if confirmed.status_code == 422:
        assert not object_exists(s3, rgw_bucket, grant["key"])
        assert images_recorded(rgw_app) == 0
    else:
        url = signed_get(api, confirmed.json["image"]["id"])
        assert requests.get(url, timeout=HTTP_TIMEOUT).status_code == 200


@both_signers
def test_the_pending_tag_is_signed_and_flipped_on_confirm(
    api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    # the lifecycle rule that expires never-confirmed objects relies on this tag
    data = png_bytes()
    grant = presigned(api, data)
    assert_grant_signs(grant, "x-amz-tagging")
    pending = grant["headers"]["x-amz-tagging"]
    for forged in ("broker-state=confirmed", "", pending + "&x=y"):
        resp = put(grant, data, **{"x-amz-tagging": forged})
        assert s3_error(resp) == (403, "SignatureDoesNotMatch"), forged
    assert s3_error(put(grant, data, **{"x-amz-tagging": None})) == (403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, grant["key"])

    assert put(grant, data).status_code == 200
    tags = s3.get_object_tagging(Bucket=rgw_bucket, Key=grant["key"])["TagSet"]
    assert [f"{t['Key']}={t['Value']}" for t in tags] == [pending]
    assert confirm(api, grant["key"]).status_code == 201
    tags = s3.get_object_tagging(Bucket=rgw_bucket, Key=grant["key"])["TagSet"]
    assert [(t["Key"], t["Value"]) for t in tags] == [("broker-state", "confirmed")]


# ---------------------------------------------------------------- 3. safe to render
# (filename as the client sends it, the display name the broker should keep)
NASTY_FILENAMES = [
    pytest.param('a"; evil=1.png', 'a"; evil=1.png', id="quote-param-injection"),
    pytest.param("x\r\nSet-Cookie: a=b.png", "xSet-Cookie: a=b.png", id="crlf-header-injection"),
    pytest.param("../../etc/passwd.png", "passwd.png", id="path-traversal"),
    pytest.param("日本語 café.png", "日本語 café.png", id="non-ascii"),
    pytest.param("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png", id="html"),
]
# names that need no encoding at all: the fallback can be the name itself
PLAIN_NAME = re.compile(r"[A-Za-z0-9 ._-]+")
# RFC 6266 with a quoted-string fallback that holds nothing that could end it or start a new
# parameter or path, and an optional RFC 5987 ext-value made of attr-chars and %XX only.
DISPOSITION = re.compile(
    r"(?P<type>inline|attachment); filename=\"(?P<fallback>[A-Za-z0-9 ._()+,=@-]+)\""
    r"(?:; filename\*=UTF-8''(?P<ext>(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+))?"
)


def _assert_safe_disposition(resp: requests.Response, disposition: str, display: str) -> None:
    assert resp.headers["Content-Type"] == "image/png"
    values = resp.raw.headers.getlist("Content-Disposition")
    assert len(values) == 1, values  # exactly one header, nothing split off it
    (value,) = values
    match = DISPOSITION.fullmatch(value)
    assert match, value
    assert match["type"] == disposition
    fallback = match["fallback"]
    assert fallback.strip() == fallback and fallback.endswith(".png")
    assert value.count('"') == 2  # the fallback's own quotes, nothing else
    # a naive ';' split sees the disposition and the filename parameters only
    names = [part.split("=", 1)[0].strip() for part in value.split(";")[1:]]
    assert names in (["filename"], ["filename", "filename*"]), names
    if PLAIN_NAME.fullmatch(display):
        # a plain name needs no encoding: the fallback is the name itself, and nothing else
        assert (fallback, match["ext"]) == (display, None)
    else:
        # RFC 6266 appendix D: filename* whenever the fallback cannot carry the name faithfully,
        # which is always the case for a non-ASCII name; it decodes to the name as displayed
        assert fallback != display
        assert match["ext"] is not None, f"no filename* for {display!r}"
        assert unquote(match["ext"], encoding="utf-8", errors="strict") == display
    # no header was injected
    assert "Set-Cookie" not in resp.headers


@both_signers
@pytest.mark.parametrize(("filename", "display"), NASTY_FILENAMES)
def test_signed_get_of_a_nasty_filename_is_safe_to_render(
    api: FlaskClient, filename: str, display: str
) -> None:
    data = png_bytes()
    image = upload(api, data, filename=filename).image
    assert image["filename"] == display
    for disposition in ("inline", "attachment"):
        url = signed_get(api, image["id"], disposition=disposition)
        resp = requests.get(url, timeout=HTTP_TIMEOUT)
        assert resp.status_code == 200, resp.text
        assert resp.content == data
        # the header is exactly what the broker signed, and it is safe
        assert (
            resp.headers["Content-Disposition"] == query_params(url)["response-content-disposition"]
        )
        _assert_safe_disposition(resp, disposition, display)


# ---------------------------------------------------------------- 4. CORS
def preflight(
    url: str, origin: str, method: str = "PUT", headers: str = "content-type"
) -> requests.Response:
    return requests.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=HTTP_TIMEOUT,
    )


def header_set(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


@both_signers
def test_bucket_cors_applied_by_the_broker_lets_allowed_origins_upload(
    make_rgw_app: Callable[..., Flask], signer: str, s3: Any, rgw_bucket: str
) -> None:
    app = make_rgw_app(BROKER_SIGNER=signer, BROKER_CORS_ORIGINS=",".join(ALLOWED_ORIGINS))
    api = app.test_client()
    applied = run_cli(app, "apply-cors")
    assert {tuple(rule["AllowedOrigins"]) for rule in applied["CORSRules"]} == {ALLOWED_ORIGINS}
    stored = s3.get_bucket_cors(Bucket=rgw_bucket)["CORSRules"]
    assert {origin for rule in stored for origin in rule["AllowedOrigins"]} == set(ALLOWED_ORIGINS)

    data = png_bytes()
    grant = presigned(api, data)
    # what a browser asks before PUTting the grant's headers cross-origin
    asked = ",".join(name.lower() for name in grant["headers"])
    assert {"content-type", "content-md5"} <= header_set(asked)
    for origin in ALLOWED_ORIGINS:
        resp = preflight(grant["url"], origin, headers=asked)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert "put" in header_set(resp.headers["Access-Control-Allow-Methods"])
        # every header the grant makes the browser send is allowed (else the upload is dead)
        assert header_set(asked) <= header_set(resp.headers["Access-Control-Allow-Headers"])
        assert "Access-Control-Allow-Credentials" not in resp.headers
    # the checksum header a provider may enforce is allowed too
    resp = preflight(grant["url"], ALLOWED_ORIGINS[1], headers="content-type,x-amz-checksum-sha256")
    assert resp.status_code == 200, resp.text
    assert "x-amz-checksum-sha256" in header_set(resp.headers["Access-Control-Allow-Headers"])

    # the PUT itself: the browser may read the ETag
    resp = put(grant, data, Origin=ALLOWED_ORIGINS[1])
    assert resp.status_code == 200, resp.text
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGINS[1]
    assert "etag" in header_set(resp.headers["Access-Control-Expose-Headers"])
    confirmed = confirm(api, grant["key"])
    assert confirmed.status_code == 201

    # and a page on an allowed origin may fetch() the signed GET
    url = signed_get(api, confirmed.json["image"]["id"])
    got = requests.get(url, headers={"Origin": ALLOWED_ORIGINS[0]}, timeout=HTTP_TIMEOUT)
    assert got.status_code == 200
    assert got.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGINS[0]

    # anything else is refused
    for refused in (
        preflight(grant["url"], OTHER_ORIGIN, headers=asked),
        preflight(grant["url"], "http://localhost:8001", headers=asked),
        preflight(grant["url"], ALLOWED_ORIGINS[0], method="DELETE"),
        # x-amz-acl is part of every grant now; a grant header the broker never signs is not.
        preflight(grant["url"], ALLOWED_ORIGINS[0], headers="content-type,x-amz-grant-read"),
    ):
        assert s3_error(refused) == (403, "AccessDenied")
        assert "Access-Control-Allow-Origin" not in refused.headers
    other = requests.get(url, headers={"Origin": OTHER_ORIGIN}, timeout=HTTP_TIMEOUT)
    assert "Access-Control-Allow-Origin" not in other.headers


def test_apply_bucket_cors_function_uses_the_configured_origins(
    make_rgw_app: Callable[..., Flask], s3: Any, rgw_bucket: str
) -> None:
    app = make_rgw_app(BROKER_CORS_ORIGINS="https://app.example")
    rules = apply_bucket_cors(broker_of(app).bucket, broker_of(app).settings)
    assert [rule["AllowedOrigins"] for rule in rules] == [["https://app.example"]]
    (stored,) = s3.get_bucket_cors(Bucket=rgw_bucket)["CORSRules"]
    assert stored["AllowedOrigins"] == ["https://app.example"]
    assert set(stored["AllowedMethods"]) >= {"PUT", "GET"}
    assert "ETag" in stored["ExposeHeaders"]


# ---------------------------------------------------------------- 5. confirm verifies
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"
# (bytes, declared type, extra settings, words the 422 message must hold)
NOT_WHAT_WAS_DECLARED = [
    pytest.param(png_bytes(), "image/jpeg", {}, ["image/png", "image/jpeg"], id="png-as-jpeg"),
    pytest.param(HTML, "image/png", {}, ["filetype", "image/png"], id="html-as-png"),
    pytest.param(png_bytes()[:20], "image/png", {}, ["truncated"], id="truncated-png"),
    pytest.param(
        png_bytes(1, 1),
        "image/png",
        {"BROKER_MIN_WIDTH": "2", "BROKER_MIN_HEIGHT": "2"},
        ["1x1", "minimum 2x2"],
        id="below-min-dimensions",
    ),
    pytest.param(
        png_claiming(100_000, 100_000),
        "image/png",
        {},
        ["100000x100000", "40000000"],
        id="pixel-bomb-header",
    ),
]


@pytest.mark.parametrize(("data", "filetype", "settings", "words"), NOT_WHAT_WAS_DECLARED)
def test_confirm_rejects_an_object_that_is_not_what_was_declared(
    make_rgw_app: Callable[..., Flask],
    s3: Any,
    rgw_bucket: str,
    data: bytes,
    filetype: str,
    settings: dict[str, str],
    words: list[str],
) -> None:
    app = make_rgw_app(**settings)
    api = app.test_client()
    grant = presigned(api, data, filetype=filetype)
    # the declaration matches the bytes' length, type header and MD5: the bucket takes them
    assert put(grant, data).status_code == 200
    assert object_exists(s3, rgw_bucket, grant["key"])

    resp = confirm(api, grant["key"])
    assert api_error(resp) == (422, "upload_invalid"), resp.json
    message = resp.json["error"]["message"]
    for word in words:
        assert word in message, message

    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert images_recorded(app) == 0
    again = confirm(api, grant["key"])
    assert api_error(again) == (409, "conflict"), again.json
    assert images_recorded(app) == 0
    listed = api.get("/images", headers=auth("alice"))
    assert listed.status_code == 200 and listed.json["images"] == []


@both_signers
def test_a_size_other_than_declared_cannot_be_put_and_confirm_records_nothing(
    api: FlaskClient, rgw_app: Flask, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes()
    padded = data + b"\0" * 10
    grant = presigned(api, padded)
    for body in (data, data + b"\0" * 20):
        assert s3_error(put(grant, body)) == (403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, grant["key"])

    resp = confirm(api, grant["key"])
    assert api_error(resp) == (422, "upload_invalid"), resp.json
    assert "not found" in resp.json["error"]["message"]
    assert images_recorded(rgw_app) == 0
    # a missing object does not close the upload: the declared bytes can still come
    assert put(grant, padded).status_code == 200
    assert confirm(api, grant["key"]).status_code == 201
    assert images_recorded(rgw_app) == 1


# ---------------------------------------------------------------- 6. no orphans
def test_sweep_deletes_an_upload_that_was_never_confirmed(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes()
    grant = presigned(api, data)
    kept = presigned(api, data)  # still within its deadline: the sweeper leaves it alone
    assert put(grant, data).status_code == 200
    assert put(kept, data).status_code == 200
    backdate_upload(rgw_app, grant["key"])

    assert sweep(rgw_app) == (1, 0)
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert api_error(confirm(api, grant["key"])) == (409, "conflict")
    assert images_recorded(rgw_app) == 0

    assert object_exists(s3, rgw_bucket, kept["key"])
    assert confirm(api, kept["key"]).status_code == 201
    # a second sweep has nothing left to do, and does not touch confirmed images
    backdate_upload(rgw_app, kept["key"])
    assert sweep(rgw_app) == (0, 0)
    assert object_exists(s3, rgw_bucket, kept["key"])
    assert images_recorded(rgw_app) == 1


def _fail_delete_once(monkeypatch: pytest.MonkeyPatch, app: Flask) -> list[str]:
    """Make the app's next S3 DeleteObject fail as if the endpoint were unreachable."""
    client = broker_of(app).bucket.client
    real = client.delete_object
    calls: list[str] = []

    def flaky(**kwargs: Any) -> Any:
        calls.append(kwargs["Key"])
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="x")
        return real(**kwargs)

    monkeypatch.setattr(client, "delete_object", flaky)
    return calls


def _delete_fails_midway(
    monkeypatch: pytest.MonkeyPatch, app: Flask, api: FlaskClient, s3: Any, bucket: str
) -> dict[str, Any]:
    image = upload(api).image
    before = requests.get(signed_get(api, image["id"]), timeout=HTTP_TIMEOUT)  # a reader had it
    assert before.status_code == 200
    calls = _fail_delete_once(monkeypatch, app)
    resp = api.delete(f"/images/{image['id']}", headers=auth("alice"))
    assert api_error(resp) == (503, "unavailable"), resp.json
    assert int(resp.headers["Retry-After"]) > 0
    # no endpoint, no botocore detail
    assert "127.0.0.1" not in resp.get_data(as_text=True)
    assert "Could not connect" not in resp.get_data(as_text=True)
    assert calls == [image["key"]]
    # hidden at once, but the object is still there: nothing was lost, nothing is dangling yet
    assert api_error(api.get(f"/images/{image['id']}", headers=auth("alice"))) == (
        404,
        "not_found",
    )
    assert api.get("/images", headers=auth("alice")).json["images"] == []
    signed = api.get(f"/images/{image['id']}/signed-url", headers=auth("alice"))
    assert api_error(signed) == (404, "not_found")
    assert object_exists(s3, bucket, image["key"])
    assert images_recorded(app) == 1
    return image


def test_sweep_interrupted_by_s3_leaves_no_orphan(
    monkeypatch: pytest.MonkeyPatch, rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes()
    grant = presigned(api, data)
    assert put(grant, data).status_code == 200
    backdate_upload(rgw_app, grant["key"])
    calls = _fail_delete_once(monkeypatch, rgw_app)
    failed = rgw_app.test_cli_runner().invoke(args=["sweep"])
    assert failed.exit_code != 0, failed.output  # cron must see that this run did not finish
    assert calls == [grant["key"]]
    assert object_exists(s3, rgw_bucket, grant["key"])
    # the upload is closed all the same: confirm can no longer win it
    assert api_error(confirm(api, grant["key"])) == (409, "conflict")

    # S3 is back; once the failed attempt is old enough, a later sweep takes it over
    uploads = broker_of(rgw_app).db.uploads.collection
    doc = uploads.find_one({"key": grant["key"]})
    assert doc is not None and doc.get("closed_at") is not None, doc
    backdated = doc["closed_at"] - timedelta(minutes=2)
    uploads.update_one({"_id": doc["_id"]}, {"$set": {"closed_at": backdated}})
    assert sweep(rgw_app) == (1, 0)
    assert not object_exists(s3, rgw_bucket, grant["key"]), "the sweeper left an orphan behind"
    assert api_error(confirm(api, grant["key"])) == (409, "conflict")
    assert images_recorded(rgw_app) == 0


def test_delete_interrupted_by_s3_is_finished_by_a_retry(
    monkeypatch: pytest.MonkeyPatch, rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    image = _delete_fails_midway(monkeypatch, rgw_app, api, s3, rgw_bucket)
    retry = api.delete(f"/images/{image['id']}", headers=auth("alice"))
    assert retry.status_code == 204, retry.json
    assert not object_exists(s3, rgw_bucket, image["key"])
    assert images_recorded(rgw_app) == 0
    gone = api.delete(f"/images/{image['id']}", headers=auth("alice"))
    assert api_error(gone) == (404, "not_found")


def test_delete_interrupted_by_s3_is_finished_by_the_sweeper(
    monkeypatch: pytest.MonkeyPatch, rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    image = _delete_fails_midway(monkeypatch, rgw_app, api, s3, rgw_bucket)
    # a fresh tombstone belongs to the request that made it: the sweeper leaves it alone
    assert sweep(rgw_app) == (0, 0)
    assert object_exists(s3, rgw_bucket, image["key"])

    images = broker_of(rgw_app).db.images.collection
    doc = images.find_one({"key": image["key"]})
    assert doc is not None and doc["deleting_at"] is not None
    backdated = doc["deleting_at"] - timedelta(minutes=2)
    images.update_one({"_id": doc["_id"]}, {"$set": {"deleting_at": backdated}})

    assert sweep(rgw_app) == (0, 1)
    assert not object_exists(s3, rgw_bucket, image["key"])
    assert images_recorded(rgw_app) == 0


# ---------------------------------------------------------------- 7. confirm vs the sweeper
def test_confirm_after_the_sweeper_expired_the_upload_is_409(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes()
    grant = presigned(api, data)
    assert put(grant, data).status_code == 200
    backdate_upload(rgw_app, grant["key"])

    assert sweep(rgw_app) == (1, 0)
    resp = confirm(api, grant["key"])
    assert api_error(resp) == (409, "conflict"), resp.json
    assert images_recorded(rgw_app) == 0
    assert not object_exists(s3, rgw_bucket, grant["key"])


def test_confirm_after_the_deadline_is_409_and_the_sweeper_cleans_up(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes()
    grant = presigned(api, data)
    assert put(grant, data).status_code == 200
    backdate_upload(rgw_app, grant["key"])

    resp = confirm(api, grant["key"])
    assert api_error(resp) == (409, "conflict"), resp.json
    assert images_recorded(rgw_app) == 0
    assert sweep(rgw_app) == (1, 0)
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert api_error(confirm(api, grant["key"])) == (409, "conflict")


@pytest.mark.parametrize("when", ["before-read", "after-read"])
def test_sweeper_expiring_the_upload_while_confirm_verifies(
    monkeypatch: pytest.MonkeyPatch,
    rgw_app: Flask,
    api: FlaskClient,
    s3: Any,
    rgw_bucket: str,
    when: str,
) -> None:
    """The deadline passes and the sweeper runs while confirm is checking the object: exactly
    one of them wins, and nothing outlives the other (no record without its object)."""
    data = png_bytes()
    grant = presigned(api, data)
    assert put(grant, data).status_code == 200
    bucket = broker_of(rgw_app).bucket
    real = bucket.read_head  # one ranged GET: what a HEAD says, and the first bytes
    swept: list[tuple[int, int]] = []

    def then_sweep(*args: Any, **kwargs: Any) -> Any:
        if when == "before-read" and not swept:
            backdate_upload(rgw_app, grant["key"])
            swept.append(sweep(rgw_app))
        result = real(*args, **kwargs)
        if not swept:
            backdate_upload(rgw_app, grant["key"])
            swept.append(sweep(rgw_app))
        return result

    monkeypatch.setattr(bucket, "read_head", then_sweep)
    resp = confirm(api, grant["key"])
    assert swept == [(1, 0)]
    assert api_error(resp) == (409, "conflict"), resp.json
    assert images_recorded(rgw_app) == 0
    assert not object_exists(s3, rgw_bucket, grant["key"])
