"""Multipart uploads on a real S3 (Ceph RGW 16), through URLs the broker issued.

What the bucket enforces on each part URL (the part's length and bytes), what it refuses once an
upload is finished or aborted, what complete checks (every signed part, in order, the composite
ETag the signed digests imply, then everything confirm checks), quotas and the sweep. RGW 16's
own multipart quirks are pinned at the end, each with the broker behaviour that copes with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from broker.bucket_policy import apply_bucket_cors, setup_bucket
from broker.uploads.sweep import sweep
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.images import md5_b64
from tests.support.multipart import (
    HTTP_TIMEOUT,
    MULTIPART_MAX_BYTES,
    MiB,
    Multipart,
    composite_etag,
    etag_of,
    padded_png,
    put_part,
)
from tests.support.races import both_at, together
from tests.support.s3 import S3Endpoint, object_exists, s3_error, signed_until
from tests.support.tokens import auth

pytestmark = pytest.mark.s3

both_signers = pytest.mark.parametrize("signer", ("fast", "boto3"))
ORIGIN = "http://localhost:8000"


@pytest.fixture
def rgw_app(make_rgw_app: Callable[..., Flask], signer: str) -> Flask:
    """A broker on the gateway whose size limit leaves room for multipart uploads."""
    return make_rgw_app(BROKER_SIGNER=signer, BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES)


@pytest.fixture(scope="module")
def eleven_mib() -> bytes:
    """A PNG in three parts at the smallest part size: 5 MiB, 5 MiB and 1 MiB."""
    return padded_png(11 * MiB)


def three_parts(api: FlaskClient, data: bytes, sub: str = "alice") -> Multipart:
    """A created upload of ``data`` in 5 MiB parts."""
    return Multipart(api, data, sub=sub).created(part_size=5 * MiB)


def open_uploads(s3: Any, bucket: str) -> list[str]:
    """The keys of the multipart uploads the bucket has open."""
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def images_recorded(app: Flask) -> int:
    count: int = broker_of(app).db.images.collection.count_documents({})
    return count


def signed_headers(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")


# ---------------------------------------------------------------- 1. end to end


@both_signers
def test_three_parts_make_the_image_whose_bytes_a_signed_get_serves(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    grants = flow.signed()
    for number, grant in grants.items():
        # Each URL signs the part's exact length and MD5, and nothing the client chooses.
        assert sorted(signed_headers(grant["url"])) == ["content-length", "content-md5", "host"]
        assert grant["headers"] == {"Content-MD5": md5_b64(flow.parts[number])}
    etags = {}
    for number, grant in grants.items():
        stored = put_part(grant, flow.parts[number])
        assert stored.status_code == 200, stored.text
        etags[number] = stored.headers["ETag"]
    assert etags == {n: f'"{etag_of(part)}"' for n, part in flow.parts.items()}

    completed = flow.complete([(n, etag) for n, etag in etags.items()])
    assert completed.status_code == 201, completed.json
    image = completed.json["image"]
    assert (image["size"], image["content_type"], image["width"], image["height"]) == (
        len(eleven_mib),
        "image/png",
        4,
        3,
    )
    # The ETag recorded is the composite one the three signed digests imply.
    assert image["etag"] == composite_etag(list(flow.parts.values()))
    assert image["content_md5"] is None  # no whole-file digest was verified

    signed = api.get(f"/images/{image['id']}/signed-url", headers=auth())
    served = requests.get(signed.json["url"], timeout=HTTP_TIMEOUT)
    assert served.status_code == 200 and served.content == eleven_mib
    assert served.headers["Content-Type"] == "image/png"
    head = s3.head_object(Bucket=rgw_bucket, Key=image["key"])
    assert head["CacheControl"] == "private" and head["ContentType"] == "image/png"
    assert open_uploads(s3, rgw_bucket) == []
    # Confirmed like any image: the pending tag (where the bucket keeps it) is flipped.
    tags = s3.get_object_tagging(Bucket=rgw_bucket, Key=image["key"]).get("TagSet", [])
    assert tags == [{"Key": "broker-state", "Value": "confirmed"}]


def test_one_part_smaller_than_5_mib_is_a_whole_upload(api: FlaskClient, rgw_app: Flask) -> None:
    image = Multipart(api, padded_png(300_000)).uploaded()
    assert image["size"] == 300_000


# ---------------------------------------------------------------- 2. what each part URL pins


def test_a_part_with_other_bytes_is_refused_by_the_bucket(
    api: FlaskClient, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    grant = flow.signed(2)[2]
    other = bytearray(flow.parts[2])
    other[-1] ^= 0xFF
    assert s3_error(put_part(grant, bytes(other))) == (400, "BadDigest")
    # Another MD5 header to match the other bytes breaks the signature instead.
    answer = put_part(grant, bytes(other), **{"Content-MD5": md5_b64(bytes(other))})
    assert s3_error(answer) == (403, "SignatureDoesNotMatch")
    listed = flow.listed()
    assert listed.status_code == 200 and listed.json["parts"] == []


def test_a_part_of_another_length_is_refused_by_the_bucket(
    api: FlaskClient, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    grant = flow.signed(1)[1]
    for body in (flow.parts[1][:-1], flow.parts[1] + b"\0", flow.parts[1] + flow.parts[2]):
        assert s3_error(put_part(grant, body, **{"Content-MD5": md5_b64(body)})) == (
            403,
            "SignatureDoesNotMatch",
        )
    assert flow.listed().json["parts"] == []
    assert put_part(grant, flow.parts[1]).status_code == 200


def test_a_part_url_cannot_copy_another_object_into_the_upload(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    # The bucket policy refusing copies covers PutObject, not UploadPartCopy (RGW 16 checks
    # s3:PutObject's condition on parts no more than AWS does); what keeps a part URL from
    # copying is that it signs the part's length and MD5. Someone else's image is the target.
    setup_bucket(broker_of(rgw_app).bucket, broker_of(rgw_app).settings)
    secret = Multipart(api, eleven_mib, sub="bob").uploaded()
    flow = three_parts(api, padded_png(11 * MiB))
    grant = flow.signed(1)[1]
    source = {"x-amz-copy-source": f"{rgw_bucket}/{secret['key']}"}
    # With the signed bytes as the body, and with none at all: neither stores a part.
    status, _ = s3_error(put_part(grant, flow.parts[1], **source))
    assert status >= 400
    status, _ = s3_error(requests.put(grant["url"], headers=source, timeout=HTTP_TIMEOUT))
    assert status >= 400
    assert flow.listed().json["parts"] == []
    # A properly signed UploadPartCopy is not refused by the policy: the signature is the guard.
    bucket_upload = broker_of(rgw_app).db.uploads.get_for_owner(flow.upload_id, "alice")
    assert bucket_upload is not None and bucket_upload.multipart is not None
    s3.upload_part_copy(
        Bucket=rgw_bucket,
        Key=bucket_upload.key,
        UploadId=bucket_upload.multipart.bucket_upload_id,
        PartNumber=3,
        CopySource={"Bucket": rgw_bucket, "Key": secret["key"]},
        CopySourceRange="bytes=0-1023",
    )


def test_unsigned_headers_on_a_part_do_not_shape_the_object(
    api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    smuggled = {
        "Content-Encoding": "gzip",
        "Cache-Control": "public, max-age=31536000",
        "x-amz-meta-evil": "1",
        "x-amz-acl": "public-read",
        "Content-Type": "text/html",
    }
    for number, grant in flow.signed().items():
        assert put_part(grant, flow.parts[number], **smuggled).status_code == 200
    completed = flow.complete()
    assert completed.status_code == 201, completed.json
    head = s3.head_object(Bucket=rgw_bucket, Key=completed.json["image"]["key"])
    assert head["ContentType"] == "image/png" and head["CacheControl"] == "private"
    assert "ContentEncoding" not in head and head["Metadata"] == {}


# ---------------------------------------------------------------- 3. complete


def test_complete_with_a_missing_reordered_or_foreign_part_records_nothing(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    flow.send()
    other = three_parts(api, padded_png(11 * MiB))
    other.send()
    etags = [(n, etag_of(part)) for n, part in flow.parts.items()]
    foreign = (2, etag_of(other.parts[2]))
    for wrong, why in (
        (etags[:2], "missing: 3"),
        ([etags[0], etags[2]], "missing: 2"),
        ([etags[1], etags[0], etags[2]], "ascending order"),
        ([etags[0], foreign, etags[2]], "part 2's etag is not the one"),
    ):
        answer = flow.complete(wrong)
        assert answer.status_code == 422 and answer.json["error"]["code"] == "upload_invalid"
        assert why in answer.json["error"]["message"]
    assert flow.upload is not None and not object_exists(s3, rgw_bucket, flow.upload["key"])
    assert images_recorded(rgw_app) == 0
    # Nothing changed: the parts are still there and the right list completes.
    assert [p["part_number"] for p in flow.listed().json["parts"]] == [1, 2, 3]
    assert flow.complete().status_code == 201


def test_a_part_the_bucket_does_not_hold_as_signed_leaves_the_upload_open(
    rgw_app: Flask, api: FlaskClient, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    flow.send(1, 2)
    flow.signed(3)  # signed, never sent
    answer = flow.complete()
    assert (
        answer.status_code == 422 and "upload the missing ones" in answer.json["error"]["message"]
    )
    assert images_recorded(rgw_app) == 0
    flow.send(3)
    assert flow.complete().status_code == 201


def test_resuming_from_the_list_of_parts_the_bucket_holds(
    api: FlaskClient, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    flow.send(1, 3)
    # A new page (after a reload) knows the upload id and the file, nothing else.
    resumed = Multipart(api, eleven_mib, upload=flow.upload)
    held = resumed.listed().json["parts"]
    assert held == [
        {"part_number": n, "etag": etag_of(resumed.parts[n]), "size": len(resumed.parts[n])}
        for n in (1, 3)
    ]
    missing = [n for n in resumed.parts if n not in {p["part_number"] for p in held}]
    assert missing == [2]
    resumed.send(*missing)
    listed = [(p["part_number"], p["etag"]) for p in resumed.listed().json["parts"]]
    completed = resumed.complete(listed)
    assert completed.status_code == 201, completed.json


def test_a_part_can_be_sent_again_until_complete_and_the_newest_signed_digest_counts(
    api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    first, second = padded_png(6 * MiB), padded_png(6 * MiB)
    flow = Multipart(api, first).created(part_size=5 * MiB)
    old = flow.signed(1)[1]
    flow.send()
    # The client changes its mind about part 1 (other bytes): re-signed, sent again.
    changed = Multipart(api, first[:0] + second[: 5 * MiB] + first[5 * MiB :], upload=flow.upload)
    changed.send(1)
    # The old URL (still valid) puts the old bytes back: complete refuses the list it was given
    # for the newest digest, because the bucket holds other bytes.
    assert put_part(old, flow.parts[1]).status_code == 200
    assert changed.complete().status_code == 422
    changed.send(1)
    completed = changed.complete()
    assert completed.status_code == 201, completed.json
    body = s3.get_object(Bucket=rgw_bucket, Key=completed.json["image"]["key"])["Body"].read()
    assert body == changed.data


# ---------------------------------------------------------------- 4. finished and aborted uploads


def test_a_finished_upload_answers_its_image_again_and_refuses_everything_else(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    late = flow.signed(2)[2]  # a part URL still valid after complete
    flow.send()
    first = flow.complete()
    assert first.status_code == 201
    again = flow.complete()
    assert again.status_code == 200 and again.json["image"] == first.json["image"]
    for refused in (flow.sign(1), flow.listed(), flow.abort()):
        assert refused.status_code == 409 and refused.json["error"]["code"] == "conflict"
    # The bucket refuses every part of a finished upload: the object cannot change.
    key = first.json["image"]["key"]
    assert s3_error(put_part(late, flow.parts[2])) == (404, "NoSuchUpload")
    assert s3.get_object(Bucket=rgw_bucket, Key=key)["Body"].read() == eleven_mib
    assert images_recorded(rgw_app) == 1


def test_abort_drops_the_parts_and_closes_the_upload(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    flow = three_parts(api, eleven_mib)
    grants = flow.signed()
    assert put_part(grants[1], flow.parts[1]).status_code == 200
    assert open_uploads(s3, rgw_bucket) == [flow.upload["key"] if flow.upload else None]
    assert broker_of(rgw_app).db.quotas.usage("alice").bytes == len(eleven_mib)

    assert flow.abort().status_code == 204
    assert open_uploads(s3, rgw_bucket) == []
    assert broker_of(rgw_app).db.quotas.usage("alice").bytes == 0
    # A part URL of the aborted upload stores nothing.
    assert s3_error(put_part(grants[2], flow.parts[2])) == (404, "NoSuchUpload")
    for refused in (flow.sign(1), flow.listed(), flow.complete(), flow.abort()):
        assert refused.status_code == 409
    assert s3.list_objects_v2(Bucket=rgw_bucket).get("Contents", []) == []


def test_two_aborts_at_once_abort_once_on_rgw(
    rgw_app: Flask,
    api: FlaskClient,
    s3: Any,
    rgw_bucket: str,
    eleven_mib: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flow = three_parts(api, eleven_mib)
    flow.send(1)
    broker = broker_of(rgw_app)
    # Both aborts reach the bucket before either closes the record: the second abort RGW sees
    # is of an upload it has just dropped, and that is no failure (no 503, no 500).
    both_at(broker.db.uploads, "close", monkeypatch)

    answers = together(
        lambda: Multipart(rgw_app.test_client(), eleven_mib, upload=flow.upload).abort()
    )

    assert sorted(answer.status_code for answer in answers) == [204, 409], [
        answer.json for answer in answers
    ]
    loser = next(answer for answer in answers if answer.status_code == 409)
    error = assert_envelope(loser, 409, "conflict")
    assert error["message"] == "the upload is no longer pending (aborted)"
    assert open_uploads(s3, rgw_bucket) == []
    assert broker.db.quotas.usage("alice").bytes == 0  # given back once, not twice
    assert s3.list_objects_v2(Bucket=rgw_bucket).get("Contents", []) == []


def test_someone_elses_upload_id_is_not_found(api: FlaskClient, eleven_mib: bytes) -> None:
    flow = three_parts(api, eleven_mib)
    flow.send(1)
    mallory = Multipart(api, eleven_mib, sub="mallory", upload=flow.upload)
    for answer in (mallory.sign(2), mallory.listed(), mallory.complete(), mallory.abort()):
        assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"
    assert [p["part_number"] for p in flow.listed().json["parts"]] == [1]


# ---------------------------------------------------------------- 5. lifetimes, quotas, sweep


def test_an_expired_part_url_is_signed_again_and_the_upload_goes_on(
    make_rgw_app: Callable[..., Flask], eleven_mib: bytes
) -> None:
    # Two apps on one database and bucket: the hasty one signs for one second, so its URL is
    # surely stale; every other step goes through the patient one, so a slow machine cannot
    # expire a URL the test needs to succeed.
    patient = make_rgw_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES)
    hasty = make_rgw_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES, BROKER_UPLOAD_EXPIRES="1")
    flow = three_parts(patient.test_client(), eleven_mib)
    flow.send(1, 3)
    stale = replace(flow, client=hasty.test_client()).signed(2)[2]
    signed_at = parse_qs(urlsplit(stale["url"]).query)["X-Amz-Date"][0]
    assert parse_qs(urlsplit(stale["url"]).query)["X-Amz-Expires"] == ["1"]
    time.sleep(2.5)  # X-Amz-Date has one-second resolution
    assert s3_error(put_part(stale, flow.parts[2])) == (403, "AccessDenied")
    fresh = flow.signed(2)[2]
    assert parse_qs(urlsplit(fresh["url"]).query)["X-Amz-Date"][0] != signed_at
    assert put_part(fresh, flow.parts[2]).status_code == 200
    assert flow.complete().status_code == 201


def test_a_part_url_never_outlives_the_upload(
    make_rgw_app: Callable[..., Flask], eleven_mib: bytes
) -> None:
    app = make_rgw_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES)
    flow = three_parts(app.test_client(), eleven_mib)
    broker = broker_of(app)
    soon = broker.db.uploads.get_for_owner(flow.upload_id, "alice")
    assert soon is not None
    deadline = soon.created_at + timedelta(seconds=4)
    broker.db.uploads.collection.update_one(
        {"_id": flow.upload_id}, {"$set": {"expires_at": deadline}}
    )
    url = flow.signed(1)[1]["url"]
    expires = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    assert 1 <= expires <= 4
    assert signed_until(url) <= deadline


def test_the_quota_is_held_from_create_on(
    make_rgw_app: Callable[..., Flask], eleven_mib: bytes
) -> None:
    app = make_rgw_app(
        BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES,
        BROKER_QUOTA_MAX_BYTES=str(len(eleven_mib) * 2 - 1),
    )
    api = app.test_client()
    flow = three_parts(api, eleven_mib)
    refused = Multipart(api, eleven_mib).create()
    assert refused.status_code == 413 and "quota" in refused.json["error"]["details"]
    flow.send()
    assert flow.complete().status_code == 201
    # Recorded, the image holds the bytes now: still no room for a second one.
    assert Multipart(api, eleven_mib).create().status_code == 413
    assert broker_of(app).db.quotas.usage("alice").bytes == len(eleven_mib)


def test_the_sweeper_aborts_a_stale_upload_and_cleans_its_key(
    rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    broker = broker_of(rgw_app)
    stale = three_parts(api, eleven_mib)
    grants = stale.signed()
    assert put_part(grants[1], stale.parts[1]).status_code == 200
    kept = three_parts(api, padded_png(11 * MiB))
    kept.send(1)
    past = broker.db.uploads.get_for_owner(stale.upload_id, "alice")
    assert past is not None
    overdue = past.created_at - timedelta(days=1)
    broker.db.uploads.collection.update_one(
        {"_id": stale.upload_id}, {"$set": {"expires_at": overdue, "confirm_by": overdue}}
    )
    report = sweep(broker)
    assert (report.expired_uploads, report.failed) == (1, 0)
    assert open_uploads(s3, rgw_bucket) == [kept.upload["key"] if kept.upload else None]
    # Its part URLs (still valid) store nothing any more, and the upload is over.
    assert s3_error(put_part(grants[2], stale.parts[2])) == (404, "NoSuchUpload")
    assert stale.complete().status_code == 409
    assert broker.db.quotas.usage("alice").bytes == len(kept.data)
    assert stale.upload is not None and not object_exists(s3, rgw_bucket, stale.upload["key"])
    # The other upload goes on.
    kept.send(2, 3)
    assert kept.complete().status_code == 201


# ---------------------------------------------------------------- 6. the browser's view


def test_the_bucket_cors_lets_a_browser_send_parts_and_read_their_etag(
    rgw_app: Flask, api: FlaskClient, eleven_mib: bytes
) -> None:
    apply_bucket_cors(broker_of(rgw_app).bucket, broker_of(rgw_app).settings)
    flow = three_parts(api, eleven_mib)
    grant = flow.signed(1)[1]
    preflight = requests.options(
        grant["url"],
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-md5",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    sent = put_part(grant, flow.parts[1], Origin=ORIGIN)
    assert sent.status_code == 200
    exposed = {h.strip().lower() for h in sent.headers["Access-Control-Expose-Headers"].split(",")}
    assert "etag" in exposed


# ---------------------------------------------------------------- 7. RGW 16's quirks, pinned


@pytest.fixture
def rgw16(rgw: S3Endpoint) -> None:
    if not rgw.is_rgw16:
        pytest.skip(f"documents Ceph RGW 16, not {rgw.server}")


def _raw_upload(
    s3: Any, bucket: str, key: str, parts: list[bytes], **create: Any
) -> tuple[str, list[dict[str, Any]]]:
    upload_id: str = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="image/png", **create
    )["UploadId"]
    listed = []
    for number, part in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
        )
        listed.append({"PartNumber": number, "ETag": answer["ETag"]})
    return upload_id, listed


def test_rgw16_answers_complete_with_an_empty_etag_so_the_broker_reads_head(
    rgw16: None, rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str, eleven_mib: bytes
) -> None:
    parts = [eleven_mib[: 5 * MiB], eleven_mib[5 * MiB :]]
    upload_id, listed = _raw_upload(s3, rgw_bucket, "raw/empty-etag.png", parts)
    answer = s3.complete_multipart_upload(
        Bucket=rgw_bucket,
        Key="raw/empty-etag.png",
        UploadId=upload_id,
        MultipartUpload={"Parts": listed},
    )
    assert answer["ETag"] == ""
    head = s3.head_object(Bucket=rgw_bucket, Key="raw/empty-etag.png")
    assert head["ETag"] == f'"{composite_etag(parts)}"'
    # The broker's complete checks and records the ETag HEAD gives.
    image = Multipart(api, eleven_mib).uploaded(part_size=5 * MiB)
    assert image["etag"] == composite_etag(
        [eleven_mib[: 5 * MiB], eleven_mib[5 * MiB : 10 * MiB], eleven_mib[10 * MiB :]]
    )


def test_rgw16_completes_a_list_out_of_order_so_the_broker_checks_the_order_itself(
    rgw16: None, s3: Any, rgw_bucket: str
) -> None:
    parts = [padded_png(5 * MiB), padded_png(1000)]
    upload_id, listed = _raw_upload(s3, rgw_bucket, "raw/reordered.png", parts)
    s3.complete_multipart_upload(
        Bucket=rgw_bucket,
        Key="raw/reordered.png",
        UploadId=upload_id,
        MultipartUpload={"Parts": list(reversed(listed))},
    )
    assert object_exists(s3, rgw_bucket, "raw/reordered.png")
    # (test_complete_with_a_missing_reordered_or_foreign_part_records_nothing: the broker says 422)


def test_rgw16_ignores_tags_given_at_create_so_confirm_tags_the_object(
    rgw16: None, s3: Any, rgw_bucket: str
) -> None:
    parts = [padded_png(1000)]
    upload_id, listed = _raw_upload(
        s3, rgw_bucket, "raw/tagged.png", parts, Tagging="broker-state=pending"
    )
    s3.complete_multipart_upload(
        Bucket=rgw_bucket,
        Key="raw/tagged.png",
        UploadId=upload_id,
        MultipartUpload={"Parts": listed},
    )
    assert s3.get_object_tagging(Bucket=rgw_bucket, Key="raw/tagged.png").get("TagSet", []) == []
    # (the end-to-end test: the broker's complete tags the object "confirmed")


def test_rgw16_lists_the_parts_of_a_finished_upload_as_no_such_key(
    rgw16: None, rgw_app: Flask, api: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    parts = [padded_png(1000)]
    upload_id, _ = _raw_upload(s3, rgw_bucket, "raw/listed.png", parts)
    s3.abort_multipart_upload(Bucket=rgw_bucket, Key="raw/listed.png", UploadId=upload_id)
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.list_parts(Bucket=rgw_bucket, Key="raw/listed.png", UploadId=upload_id)
    # The broker reads any "not found" as gone: an upload aborted behind its back is closed.
    flow = Multipart(api, padded_png(1000)).created()
    record = broker_of(rgw_app).db.uploads.get_for_owner(flow.upload_id, "alice")
    assert record is not None and record.multipart is not None
    s3.abort_multipart_upload(
        Bucket=rgw_bucket, Key=record.key, UploadId=record.multipart.bucket_upload_id
    )
    gone = flow.listed()
    assert gone.status_code == 409 and "aborted in the bucket" in gone.json["error"]["message"]
    assert broker_of(rgw_app).db.quotas.usage("alice").bytes == 0
