"""What was verified is what is served: the attacks of issue 9, replayed on Ceph RGW.

Each test is something a hostile user did with URLs the broker issued (or with the broker's own
endpoints) that broke the promise that an image the broker recorded is exactly the object it
verified, in its owner's private space. Every one of them worked before; here each must fail.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import string
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_refresh_token

from broker.devservers import MongoServer
from tests.support.apps import broker_of
from tests.support.envelope import api_error
from tests.support.gunicorn import Gunicorn
from tests.support.images import png_bytes, png_claiming, png_of_size
from tests.support.rgw import both_signers, images_recorded, signed_get
from tests.support.s3 import (
    S3Endpoint,
    object_exists,
    query_params,
    replace_param,
    s3_error,
    sleep_past_expiry,
)
from tests.support.settings import broker_settings
from tests.support.tokens import JWT_SECRET, auth, bearer, make_token
from tests.support.upload import HTTP_TIMEOUT, confirm, presign, presigned, put, upload

pytestmark = pytest.mark.s3

COPY_SOURCE = "x-amz-copy-source"
# The request-head limits the README documents (broker/http/request_head.py).
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELD = 8190


def setup_bucket(app: Flask) -> dict[str, str]:
    """``flask --app wsgi setup-bucket``; what it said it did, item by item."""
    result = app.test_cli_runner().invoke(args=["setup-bucket"])
    assert result.exit_code == 0, (result.output, result.exception)
    lines = [line.split(": ", 1) for line in result.output.strip().splitlines()]
    return {name: outcome for name, outcome in lines}


def sweep_report(app: Flask) -> dict[str, int]:
    """``flask sweep``; the counts it reports."""
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, (result.output, result.exception)
    report: dict[str, int] = json.loads(result.output)
    return report


def object_bytes(s3: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def tags_of(s3: Any, bucket: str, key: str) -> dict[str, str]:
    tag_set = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def same_length_junk(data: bytes, prefix: bytes) -> bytes:
    """Other bytes of exactly ``data``'s length, starting with ``prefix``."""
    assert len(prefix) <= len(data)
    return prefix + b" " * (len(data) - len(prefix))


# ================================================================ 1. copy-source
ALL_APPLIED = {
    "cors": "applied",
    "lifecycle": "applied",
    "copy-refusing policy": "applied",
    "public-access block": "applied",
}
ALL_IN_PLACE = dict.fromkeys(ALL_APPLIED, "already in place")


def test_setup_bucket_applies_everything_once_and_says_so(
    make_rgw_app: Callable[..., Flask], s3: Any, rgw_bucket: str
) -> None:
    app = make_rgw_app(BROKER_CORS_ORIGINS="https://app.example")
    assert setup_bucket(app) == ALL_APPLIED
    assert setup_bucket(app) == ALL_IN_PLACE  # idempotent: nothing rewritten

    cors = s3.get_bucket_cors(Bucket=rgw_bucket)["CORSRules"]
    assert [rule["AllowedOrigins"] for rule in cors] == [["https://app.example"]]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=rgw_bucket)["Rules"]
    assert {rule["ID"] for rule in rules} == {
        "broker-expire-unconfirmed-uploads",
        "broker-abort-incomplete-multipart",
    }
    block = s3.get_public_access_block(Bucket=rgw_bucket)["PublicAccessBlockConfiguration"]
    assert block["BlockPublicPolicy"] is True and block["IgnorePublicAcls"] is True
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=rgw_bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"StringLike": {"s3:x-amz-copy-source": "*"}}

    # An operator's own statement survives, and BlockPublicPolicy (in place now) does not stop
    # the Deny from being put back when it went missing.
    own = {
        "Sid": "OperatorNoWebsite",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutBucketWebsite",
        "Resource": f"arn:aws:s3:::{rgw_bucket}",
    }
    s3.put_bucket_policy(
        Bucket=rgw_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [own]})
    )
    assert setup_bucket(app) == {**ALL_IN_PLACE, "copy-refusing policy": "applied"}
    statements = json.loads(s3.get_bucket_policy(Bucket=rgw_bucket)["Policy"])["Statement"]
    assert {s["Sid"] for s in statements} == {"OperatorNoWebsite", statement["Sid"]}


@both_signers
def test_the_broker_works_on_a_bucket_set_up_to_refuse_copies(
    make_rgw_app: Callable[..., Flask], signer: str, s3: Any, rgw_bucket: str
) -> None:
    # The Deny covers every principal, the broker's own credentials included: none of the
    # broker's calls (presigned PUT, HEAD, ranged GET, tagging, signed GET, delete) is a copy.
    app = make_rgw_app(BROKER_SIGNER=signer)
    setup_bucket(app)
    api = app.test_client()
    data = png_bytes(7, 5)
    image = upload(api, data).image
    assert tags_of(s3, rgw_bucket, image["key"]) == {"broker-state": "confirmed"}
    got = requests.get(signed_get(api, image["id"]), timeout=HTTP_TIMEOUT)
    assert (got.status_code, got.content) == (200, data)
    assert api.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
    assert not object_exists(s3, rgw_bucket, image["key"])


@pytest.fixture
def other_bucket(rgw: S3Endpoint, s3: Any) -> Iterator[str]:
    """Another bucket the broker's credentials can read, holding a private object."""
    name = f"broker-other-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="secret.png", Body=png_bytes(9, 9), ContentType="image/png")
    yield name
    s3.delete_object(Bucket=name, Key="secret.png")
    s3.delete_bucket(Bucket=name)


@both_signers
def test_an_upload_url_cannot_copy_another_users_object(
    make_rgw_app: Callable[..., Flask], signer: str, s3: Any, rgw_bucket: str, other_bucket: str
) -> None:
    app = make_rgw_app(BROKER_SIGNER=signer)
    setup_bucket(app)
    api = app.test_client()
    alice_bytes = png_bytes(6, 6)
    alice = upload(api, alice_bytes, sub="alice").image

    junk = same_length_junk(alice_bytes, b"\x89PNG junk")
    grant = presigned(api, junk, sub="bob")
    for source in (
        f"/{rgw_bucket}/{alice['key']}",
        f"{rgw_bucket}/{alice['key']}",
        f"/{other_bucket}/secret.png",
    ):
        copied = put(grant, junk, **{COPY_SOURCE: source})
        assert s3_error(copied) == (403, "AccessDenied"), (source, copied.text)
        assert not object_exists(s3, rgw_bucket, grant["key"])

    # Bob's confirm finds nothing to record, let alone Alice's bytes.
    resp = confirm(api, grant["key"], sub="bob")
    assert api_error(resp) == (422, "upload_invalid")
    assert api.get("/images", headers=auth("bob")).json["images"] == []
    # Alice's image is untouched and hers alone.
    assert object_bytes(s3, rgw_bucket, alice["key"]) == alice_bytes


def test_without_the_bucket_policy_confirm_still_refuses_a_copied_object(
    rgw: S3Endpoint, api: FlaskClient, rgw_app: Flask, s3: Any, rgw_bucket: str
) -> None:
    # A bucket nobody ran setup-bucket on: RGW 16 performs the copy, and the required checksum
    # is what stops confirm from recording someone else's bytes.
    alice_bytes = png_bytes(6, 6)
    alice = upload(api, alice_bytes, sub="alice").image
    no_checksum = presign(api, alice_bytes, sub="bob", omit=("content_md5",))
    assert api_error(no_checksum) == (400, "validation_error")
    assert "content_md5" in no_checksum.json["error"]["details"]

    junk = same_length_junk(alice_bytes, b"\x89PNG junk")
    grant = presigned(api, junk, sub="bob")
    copied = put(grant, junk, **{COPY_SOURCE: f"/{rgw_bucket}/{alice['key']}"})
    if rgw.is_rgw16:
        assert copied.status_code == 200, copied.text  # the quirk this defends against
        assert object_bytes(s3, rgw_bucket, grant["key"]) == alice_bytes
    resp = confirm(api, grant["key"], sub="bob")
    assert api_error(resp) == (422, "upload_invalid")
    assert "content_md5" in resp.json["error"]["message"]
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert images_recorded(rgw_app) == 1  # Alice's only
    assert api.get("/images", headers=auth("bob")).json["images"] == []


# ================================================================ 2. checksum, write-once
def test_presign_without_a_checksum_is_400_naming_content_md5(
    api: FlaskClient, rgw_app: Flask
) -> None:
    resp = presign(api, omit=("content_md5",))
    assert api_error(resp) == (400, "validation_error")
    assert list(resp.json["error"]["details"]) == ["content_md5"]
    assert broker_of(rgw_app).db.uploads.collection.count_documents({}) == 0


@both_signers
def test_a_put_url_writes_once(api: FlaskClient, s3: Any, rgw_bucket: str) -> None:
    data = png_bytes(8, 8)
    grant = presigned(api, data)
    assert grant["headers"]["If-None-Match"] == "*"
    assert put(grant, data).status_code == 200
    image = confirm(api, grant["key"]).json["image"]
    assert tags_of(s3, rgw_bucket, grant["key"]) == {"broker-state": "confirmed"}

    # Other bytes of the same length: refused (the MD5 is signed, and the key is taken).
    other = same_length_junk(data, b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert put(grant, other).status_code in (400, 412)
    # The very same bytes again (a late client retry): refused, and nothing is reset: the
    # tag stays "confirmed", so the lifecycle rule for pending objects never deletes the image.
    assert s3_error(put(grant, data)) == (412, "PreconditionFailed")
    assert tags_of(s3, rgw_bucket, grant["key"]) == {"broker-state": "confirmed"}
    # The If-None-Match header is signed: leaving it out does not help.
    assert s3_error(put(grant, data, If_None_Match=None)) == (403, "SignatureDoesNotMatch")
    served = requests.get(signed_get(api, image["id"]), timeout=HTTP_TIMEOUT)
    assert served.content == data and served.headers["ETag"].strip('"') == image["etag"]


HTML = b"<!doctype html><script>alert(document.domain)</script>"
SVG = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"


@both_signers
def test_without_the_checksum_rule_write_once_still_refuses_an_overwrite(
    make_rgw_app: Callable[..., Flask], signer: str, s3: Any, rgw_bucket: str
) -> None:
    api = make_rgw_app(BROKER_SIGNER=signer, BROKER_REQUIRE_CHECKSUM="false").test_client()
    data = png_bytes(40, 40)
    bomb = png_claiming(100_000, 100_000)
    grant = presigned(api, data, omit=("content_md5",))
    assert "Content-MD5" not in grant["headers"]
    assert put(grant, data).status_code == 200
    image = confirm(api, grant["key"]).json["image"]
    swaps = (same_length_junk(data, HTML), same_length_junk(data, SVG), bomb + data[len(bomb) :])
    for swap in swaps:
        assert len(swap) == len(data)
        assert s3_error(put(grant, swap)) == (412, "PreconditionFailed")
    served = requests.get(signed_get(api, image["id"]), timeout=HTTP_TIMEOUT)
    assert served.content == data
    assert tags_of(s3, rgw_bucket, grant["key"]) == {"broker-state": "confirmed"}


def test_two_racing_puts_of_one_url_store_one_object(
    make_rgw_app: Callable[..., Flask], s3: Any, rgw_bucket: str
) -> None:
    # RGW checks If-None-Match when the write completes: a PUT that started first but finishes
    # second loses, so no slow PUT can land on top of what was confirmed in between.
    api = make_rgw_app(BROKER_REQUIRE_CHECKSUM="false").test_client()
    data = png_bytes(30, 30)
    grant = presigned(api, data, omit=("content_md5",))
    slow_bytes = same_length_junk(data, HTML)
    url = urlsplit(grant["url"])
    slow = http.client.HTTPConnection(url.hostname, url.port, timeout=HTTP_TIMEOUT)
    slow.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
    for name, value in {**grant["headers"], "Content-Length": str(len(data))}.items():
        slow.putheader(name, value)
    slow.endheaders()
    slow.send(slow_bytes[:10])  # started, not finished
    try:
        assert put(grant, data).status_code == 200
        assert confirm(api, grant["key"]).status_code == 201
        slow.send(slow_bytes[10:])
        answer = slow.getresponse()
        assert answer.status in (409, 412), answer.status
    finally:
        slow.close()
    assert object_bytes(s3, rgw_bucket, grant["key"]) == data


# ================================================================ 3. quota and sweeper
KB900 = 900_000


def test_pending_bytes_count_against_the_byte_quota_from_presign(
    make_rgw_app: Callable[..., Flask], s3: Any, rgw_bucket: str
) -> None:
    app = make_rgw_app(BROKER_QUOTA_MAX_BYTES="1000000", BROKER_QUOTA_MAX_IMAGES="0")
    api = app.test_client()
    data = png_of_size(KB900, 4, 4)
    # declared a JPEG: confirm will refuse it, which ends the upload
    first = presigned(api, data, filename="a.jpg", filetype="image/jpeg")
    assert put(first, data).status_code == 200
    # A second 900 KB upload would hold 1.8 MB: refused before any byte is sent, and so are
    # the next ones (before, six such objects could sit in the bucket at once).
    for _ in range(5):
        refused = presign(api, data, filename="b.png")
        assert api_error(refused) == (413, "too_large")
        assert "quota" in refused.json["error"]["details"]
    assert s3.list_objects_v2(Bucket=rgw_bucket)["KeyCount"] == 1
    # When the upload ends (here: refused at confirm), its bytes are given back at once.
    assert api_error(confirm(api, first["key"])) == (422, "upload_invalid")
    assert presigned(api, data)["key"] != first["key"]


@pytest.fixture
def short_lived(make_rgw_app: Callable[..., Flask]) -> Flask:
    """An app whose PUT URLs live 5 s and whose confirm grace is 0: URLs die while we watch."""
    app: Flask = make_rgw_app(BROKER_UPLOAD_EXPIRES="5", BROKER_CONFIRM_GRACE="0")
    return app


def end_by_reject(app: Flask, api: FlaskClient) -> tuple[dict[str, Any], bytes]:
    data = same_length_junk(png_bytes(), HTML)
    grant = presigned(api, data)
    assert put(grant, data).status_code == 200
    assert api_error(confirm(api, grant["key"])) == (422, "upload_invalid")
    return grant, data


def end_by_delete(app: Flask, api: FlaskClient) -> tuple[dict[str, Any], bytes]:
    data = png_bytes(5, 5)
    grant = presigned(api, data)
    assert put(grant, data).status_code == 200
    image = confirm(api, grant["key"]).json["image"]
    assert api.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
    return grant, data


def end_by_quota_at_confirm(app: Flask, api: FlaskClient) -> tuple[dict[str, Any], bytes]:
    # An upload presigned before presign held quota (its record holds none), confirmed when
    # the owner's quota is used up: 413, object deleted.
    data = png_bytes(6, 5)
    grant = presigned(api, data)
    broker = broker_of(app)
    broker.db.uploads.collection.update_one({"key": grant["key"]}, {"$unset": {"quota_held": ""}})
    full = broker.settings.quota_max_images
    broker.db.quotas.collection.update_one({"_id": "alice"}, {"$set": {"images": full}})
    assert put(grant, data).status_code == 200
    assert api_error(confirm(api, grant["key"])) == (413, "too_large")
    return grant, data


ENDINGS = {"rejected": end_by_reject, "deleted": end_by_delete, "quota": end_by_quota_at_confirm}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_re_put_after_the_upload_ended_is_swept_once_the_url_died(
    short_lived: Flask, s3: Any, rgw_bucket: str, ending: str
) -> None:
    api = short_lived.test_client()
    live = upload(api, png_bytes(3, 3)).image  # a confirmed image next to it: never touched
    grant, data = ENDINGS[ending](short_lived, api)
    assert not object_exists(s3, rgw_bucket, grant["key"])
    # The URL writes once, but only over nothing: after the object was deleted it stores again.
    assert put(grant, data).status_code == 200
    assert object_exists(s3, rgw_bucket, grant["key"])
    assert images_recorded(short_lived) == 1  # unverified, unrecorded: an orphan

    # While the URL lives the sweeper must leave the key alone (the client could PUT again).
    assert sweep_report(short_lived)["cleaned_uploads"] == 0
    sleep_past_expiry(grant["url"])
    report = sweep_report(short_lived)
    assert report["cleaned_uploads"] >= 1 and report["failed"] == 0
    assert not object_exists(s3, rgw_bucket, grant["key"])
    # And it stays clean: the dead URL cannot bring it back.
    assert s3_error(put(grant, data)) == (403, "AccessDenied")
    assert not object_exists(s3, rgw_bucket, grant["key"])

    assert object_exists(s3, rgw_bucket, live["key"])
    served = requests.get(signed_get(api, live["id"]), timeout=HTTP_TIMEOUT)
    assert served.status_code == 200
    assert broker_of(short_lived).db.quotas.usage("alice").images == (
        1 if ending != "quota" else broker_of(short_lived).settings.quota_max_images
    )
    assert sweep_report(short_lived)["cleaned_uploads"] == 0  # once is enough


# ================================================================ 4. unsigned stored headers
UNSIGNED_HEADERS = {
    "Content-Encoding": "gzip",
    "Cache-Control": "public, max-age=31536000",
    "Content-Disposition": 'attachment; filename="invoice.html"',
    "Content-Language": "de",
    "Expires": "Wed, 21 Oct 2037 07:28:00 GMT",
    "x-amz-website-redirect-location": "/alice/other.png",
    "x-amz-meta-note": "client-chosen",
}


@pytest.mark.parametrize("header", list(UNSIGNED_HEADERS))
def test_confirm_refuses_an_object_stored_with_headers_nobody_signed(
    api: FlaskClient, rgw_app: Flask, s3: Any, rgw_bucket: str, header: str
) -> None:
    data = png_bytes(4, 4)
    grant = presigned(api, data)
    stored = put(grant, data, **{header: UNSIGNED_HEADERS[header]})
    if header == "Cache-Control":
        # Every URL signs the Cache-Control the object stores (a browser with its cache off
        # would add its own), so the bucket itself refuses another one.
        assert grant["headers"]["Cache-Control"] == "private"
        assert s3_error(stored) == (403, "SignatureDoesNotMatch")
        assert put(grant, data).status_code == 200
        assert confirm(api, grant["key"]).status_code == 201
        return
    assert stored.status_code == 200, stored.text  # the bucket stores it
    resp = confirm(api, grant["key"])
    assert api_error(resp) == (422, "upload_invalid")
    assert header in resp.json["error"]["message"]
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert api_error(confirm(api, grant["key"])) == (409, "conflict")
    assert images_recorded(rgw_app) == 0


@both_signers
def test_signed_gets_pin_cache_control_whatever_the_object_carries(
    api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    data = png_bytes(4, 4)
    image = upload(api, data).image
    # An object stored with a Cache-Control of its own (before confirm checked, or by anyone
    # with the bucket's credentials): the signed GET's own value wins.
    s3.copy_object(
        Bucket=rgw_bucket,
        Key=image["key"],
        CopySource={"Bucket": rgw_bucket, "Key": image["key"]},
        MetadataDirective="REPLACE",
        ContentType="image/png",
        CacheControl="public, max-age=31536000",
    )
    url = signed_get(api, image["id"], expires_in=300)
    pinned = query_params(url)["response-cache-control"]
    assert pinned.startswith("private, max-age=") and "immutable" in pinned
    resp = requests.get(url, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200 and resp.content == data
    assert resp.headers["Cache-Control"] == pinned
    for forged in ("public, max-age=31536000", None):
        tampered = requests.get(
            replace_param(url, "response-cache-control", forged), timeout=HTTP_TIMEOUT
        )
        assert s3_error(tampered) == (403, "SignatureDoesNotMatch")


# ================================================================ 5. GIF frames
def gif_with_frame(screen: tuple[int, int], frame: tuple[int, int], size: int) -> bytes:
    """A GIF of ``size`` bytes: a small logical screen, then one big frame of junk LZW data."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0) + b"\x02"
    body = bytearray()
    remaining = size - len(header) - len(descriptor) - 2  # the 0 terminator and the trailer
    while remaining > 0:
        n = min(255, remaining - 1)
        body += bytes([n]) + b"\x55" * n
        remaining -= n + 1
    data = header + descriptor + bytes(body) + b"\x00\x3b"
    assert len(data) == size, len(data)
    return data


def test_a_gif_whose_frame_is_bigger_than_its_screen_is_judged_by_the_frame(
    api: FlaskClient, rgw_app: Flask, s3: Any, rgw_bucket: str
) -> None:
    bomb = gif_with_frame((10, 10), (8000, 8000), 48_000)
    grant = presigned(api, bomb, filename="tiny.gif", filetype="image/gif")
    assert put(grant, bomb).status_code == 200
    resp = confirm(api, grant["key"])
    assert api_error(resp) == (422, "upload_invalid")
    assert "8000x8000" in resp.json["error"]["message"]
    assert not object_exists(s3, rgw_bucket, grant["key"])
    assert images_recorded(rgw_app) == 0
    # An honest GIF whose frame fits its screen records the screen.
    honest = gif_with_frame((64, 48), (64, 48), 2_000)
    image = upload(api, honest, filename="ok.gif", filetype="image/gif").image
    assert (image["width"], image["height"]) == (64, 48)


# ================================================================ 6. races
def together(count: int, call: Callable[[int], Any]) -> list[Any]:
    """``call`` in ``count`` threads released at once."""
    barrier = threading.Barrier(count, timeout=60)

    def run(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def confirm_from_threads(app: Flask, key: str, count: int) -> list[int]:
    """``count`` confirms of ``key`` released at once, each with its own client."""

    def call(_: int) -> int:
        response = app.test_client().post("/images", json={"key": key}, headers=auth())
        return int(response.status_code)

    return sorted(together(count, call))


def test_concurrent_confirms_record_one_image_without_an_operator_step(
    make_rgw_app: Callable[..., Flask], own_database: str
) -> None:
    # Nobody runs `flask ensure-indexes` (prepare=False skips it in the fixture too), and the
    # confirms are the app's very first requests on a database of their own: they wait for
    # one of them to make the indexes, and the unique key holds the race.
    def fresh_app() -> Flask:
        app: Flask = make_rgw_app(
            prepare=False, BROKER_MONGODB_DB=own_database, BROKER_RATE_LIMIT_CONFIRM=""
        )
        return app

    database = broker_of(fresh_app()).db.database
    for _ in range(2):
        data = png_bytes(random.randint(2, 40), 3)
        grant = presigned(fresh_app().test_client(), data)
        assert put(grant, data).status_code == 200
        for collection in ("images", "uploads"):
            database[collection].drop_indexes()
        statuses = confirm_from_threads(fresh_app(), grant["key"], 10)
        assert statuses == [200] * 9 + [201], statuses
        assert database["images"].count_documents({"key": grant["key"]}) == 1
    assert "key_unique" in database["images"].index_information()


def test_48_concurrent_confirms_of_one_key_never_answer_503(
    make_rgw_app: Callable[..., Flask], s3: Any, rgw_bucket: str
) -> None:
    # RGW refuses simultaneous tagging of one object (409 OperationAborted) and fails a GET of
    # it that a tagging overtakes (500 UnknownError): both are retried, not 503.
    app = make_rgw_app(BROKER_RATE_LIMIT_CONFIRM="")
    api = app.test_client()
    for _ in range(2):
        data = png_bytes(random.randint(2, 40), 4)
        grant = presigned(api, data)
        assert put(grant, data).status_code == 200
        statuses = confirm_from_threads(app, grant["key"], 48)
        assert statuses == [200] * 47 + [201], statuses
        assert tags_of(s3, rgw_bucket, grant["key"]) == {"broker-state": "confirmed"}
    assert images_recorded(app) == 2


# ================================================================ 7. /metrics
def series(body: str) -> set[str]:
    """The sample lines' names and labels (what Prometheus stores one series for)."""
    return {line.rsplit(" ", 1)[0] for line in body.splitlines() if line and line[0] != "#"}


@pytest.fixture
def production_logging() -> Iterator[None]:
    """Undo what a production-mode app does to the process's logging (its own stderr
    handler on the ``broker`` logger, no propagation), so later tests still capture logs."""
    logger = logging.getLogger("broker")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate, logger.level = propagate, level


def test_metrics_answer_404_in_production_without_a_presented_token(
    make_rgw_app: Callable[..., Flask], production_logging: None
) -> None:
    unset = make_rgw_app(BROKER_ENV="production").test_client()
    assert api_error(unset.get("/metrics")) == (404, "not_found")
    assert api_error(unset.get("/metrics", headers=auth())) == (404, "not_found")

    app = make_rgw_app(BROKER_ENV="production", BROKER_METRICS_TOKEN="scrape-secret-42")
    client = app.test_client()
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic c2NyYXBlLXNlY3JldC00Mg=="},
        {"Authorization": "scrape-secret-42"},
    ):
        assert api_error(client.get("/metrics", headers=headers)) == (404, "not_found")
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-42"})
    assert ok.status_code == 200 and ok.mimetype == "text/plain"
    # demo and test modes keep it open (nothing to protect, something to look at)
    assert make_rgw_app().test_client().get("/metrics").status_code == 200


def test_metric_labels_do_not_grow_with_input(
    make_rgw_app: Callable[..., Flask], production_logging: None
) -> None:
    app = make_rgw_app(BROKER_ENV="production", BROKER_METRICS_TOKEN="scrape-secret-42")
    client = app.test_client()
    scrape = {"Authorization": "Bearer scrape-secret-42"}
    rng = random.Random(9)

    def junk_request() -> None:
        method = "X" + "".join(rng.choices(string.ascii_uppercase, k=rng.randint(1, 12)))
        path = "/" + "/".join(
            "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 20)))
            for _ in range(rng.randint(1, 4))
        )
        client.open(rng.choice([path, "/images", "/images/x1", "/healthz"]), method=method)
        client.get(path)

    # Every (label, status) junk can produce exists once: an unknown method on an unknown path
    # (404) and on a known one (405), a known method on an unknown path; and a scrape.
    for path, method in (("/nope", "XA"), ("/images", "XA"), ("/healthz", "XA"), ("/nope", "GET")):
        client.open(path, method=method)
    client.get("/metrics", headers=scrape)
    before = series(client.get("/metrics", headers=scrape).get_data(as_text=True))
    for _ in range(200):  # 400 requests
        junk_request()
    after = series(client.get("/metrics", headers=scrape).get_data(as_text=True))
    assert after == before, sorted(after - before)[:10]
    assert any('method="other"' in s and 'route="unmatched"' in s for s in after)


# ================================================================ 8. tokens
def test_lenient_tokens_are_refused(make_rgw_app: Callable[..., Flask]) -> None:
    app = make_rgw_app()
    client = app.test_client()
    now = datetime.now(UTC)

    with app.app_context():
        refresh = create_refresh_token(identity="alice")
    far = jwt.encode(
        {"sub": "alice", "iat": now, "exp": datetime(9999, 1, 1, tzinfo=UTC)}, JWT_SECRET
    )
    no_iat = jwt.encode({"sub": "alice", "exp": now + timedelta(days=30)}, JWT_SECRET)
    for token in (
        refresh,
        make_token("alice", type="refresh"),
        far,
        no_iat,
        make_token("ali\x00ce"),
        make_token("\u202eecila"),  # renders as "alice" reversed into place
        make_token("alice\u200b"),
    ):
        assert api_error(client.get("/images", headers=bearer(token))) == (401, "unauthorized")
    assert client.get("/images", headers=bearer(make_token("alice"))).status_code == 200


# ================================================================ 9. gunicorn limits
@pytest.fixture
def served(
    mongo_server: MongoServer, rgw: S3Endpoint, rgw_bucket: str, own_database: str, tmp_path: Path
) -> Iterator[str]:
    """The broker under gunicorn (gunicorn.conf.py from the repository), on the gateway."""
    settings = broker_settings(mongo_server.uri, own_database, rgw, rgw_bucket)
    with Gunicorn(settings, tmp_path / "gunicorn.log") as server:
        yield server.url


def raw_request(base: str, head: bytes) -> tuple[int, str, bytes]:
    """Send a request head as is; (status, content type, body) of the answer."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head_part, _, body = answer.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers.get("Content-Type", ""), body


def request_head(target: str, headers: dict[str, str] | None = None, extra: int = 0) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += [f"X-Filler-{i}: x" for i in range(extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def assert_json_413(answer: tuple[int, str, bytes], field: str) -> None:
    status, content_type, body = answer
    assert (status, content_type) == (413, "application/json"), answer
    error = json.loads(body)["error"]
    assert error["code"] == "too_large" and field in error["details"], error


def test_oversized_request_lines_and_headers_get_the_json_envelope_under_gunicorn(
    served: str,
) -> None:
    token = auth()["Authorization"]
    # Over the app's limits, under gunicorn's: the contract's envelope.
    for length in (MAX_REQUEST_LINE + 1, 6000, 8100):
        target = "/images?q=" + "a" * (length - len("GET /images?q= HTTP/1.1"))
        answer = raw_request(served, request_head(target, {"Authorization": token}))
        assert_json_413(answer, "request_line")
    for size in (MAX_HEADER_FIELD + 1, 12_000, 16_000):
        headers = {"Authorization": token, "X-Big": "b" * size}
        assert_json_413(raw_request(served, request_head("/images", headers)), "headers")
    assert_json_413(raw_request(served, request_head("/healthz", extra=150)), "headers")
    # Under the limits nothing changes.
    answer = raw_request(served, request_head("/images", {"Authorization": token}))
    assert answer[:2] == (200, "application/json")
    # Past gunicorn's own ceiling (8190 bytes of request line, which cannot be raised) gunicorn
    # answers before the app exists for the request: the documented case for the proxy.
    status, content_type, _ = raw_request(served, request_head("/images?q=" + "a" * 8200))
    assert (status, content_type) == (414, "text/html")
