"""Multipart uploads through the API: shapes, limits, the state machine, quotas and the sweep.

These run on moto, which checks no signature; what the bucket enforces on part URLs (length,
MD5, finished uploads) is proven on Ceph RGW in ``tests/rgw/test_multipart_on_rgw.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from broker.uploads.sweep import sweep
from tests.support.apps import broker_of
from tests.support.images import md5_b64
from tests.support.multipart import MULTIPART_MAX_BYTES, MiB, Multipart, etag_of, padded_png
from tests.support.s3 import signed_until
from tests.support.tokens import auth

ERROR_KEYS = {"code", "message", "details"}


@pytest.fixture
def big_app(make_app: Callable[..., Flask]) -> Flask:
    """An app whose size limit leaves room for multipart uploads."""
    return make_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES)


@pytest.fixture
def api(big_app: Flask) -> FlaskClient:
    """A test client of ``big_app``."""
    return big_app.test_client()


@pytest.fixture(scope="module")
def eleven_mib() -> bytes:
    """A PNG cut into three parts at the smallest part size: 5 MiB, 5 MiB and 1 MiB."""
    return padded_png(11 * MiB)


def error_of(answer: Any, status: int, code: str) -> dict[str, Any]:
    """The error of an answer, asserting its status and contract code."""
    assert answer.status_code == status, answer.json
    error: dict[str, Any] = answer.json["error"]
    assert error["code"] == code
    return error


class TestCreate:
    def test_answers_the_plan_and_holds_no_cache(self, api: FlaskClient, eleven_mib: bytes) -> None:
        answer = Multipart(api, eleven_mib).create(part_size=5 * MiB)
        assert answer.status_code == 201, answer.json
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.json
        assert set(body) == {"upload_id", "key", "part_size", "part_count", "expires_at"}
        assert (body["part_size"], body["part_count"]) == (5 * MiB, 3)
        assert body["key"].startswith("alice/") and body["key"].endswith(".png")
        assert body["expires_at"].endswith("Z")

    def test_the_broker_chooses_the_part_size_when_none_is_given(
        self, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        body = Multipart(api, eleven_mib).created().upload
        assert body is not None
        assert (body["part_size"], body["part_count"]) == (8 * MiB, 2)

    def test_a_whole_file_checksum_is_optional_and_checked_when_given(
        self, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib)
        assert flow.create(content_md5=md5_b64(eleven_mib)).status_code == 201
        error = error_of(flow.create(content_md5="not-base64"), 400, "validation_error")
        assert "content_md5" in error["details"]

    @pytest.mark.parametrize("part_size", [5 * MiB - 1, 5 * 1024 * MiB + 1, 0, "8388608", 1.5])
    def test_part_sizes_outside_s3s_bounds_are_refused(
        self, api: FlaskClient, eleven_mib: bytes, part_size: Any
    ) -> None:
        error = error_of(
            Multipart(api, eleven_mib).create(part_size=part_size), 400, "validation_error"
        )
        assert "part_size" in error["details"]

    def test_more_than_10000_parts_are_refused_naming_the_smallest_part_size(
        self, make_app: Callable[..., Flask]
    ) -> None:
        size = 10_001 * 5 * MiB
        app = make_app(BROKER_MAX_UPLOAD_BYTES=str(size), BROKER_QUOTA_MAX_BYTES="0")
        body = {"filename": "a.png", "filetype": "image/png", "size": size, "part_size": 5 * MiB}
        answer = app.test_client().post("/images/multipart", json=body, headers=auth())
        error = error_of(answer, 400, "validation_error")
        assert error["details"]["part_size"] == [
            f"cuts {size} bytes into 10001 parts, more than S3's 10000: use at least "
            f"{-(-size // 10_000)} bytes"
        ]
        # The broker's own choice always fits.
        del body["part_size"]
        answer = app.test_client().post("/images/multipart", json=body, headers=auth())
        assert answer.status_code == 201, answer.json
        assert answer.json["part_count"] <= 10_000
        assert answer.json["part_size"] % MiB == 0

    def test_the_declaration_obeys_the_presign_rules(self, api: FlaskClient) -> None:
        flow = Multipart(api, b"x" * (64 * MiB + 1))
        error_of(flow.create(), 413, "too_large")
        error_of(flow.create(filetype="text/html", size=10), 415, "unsupported_type")
        error_of(flow.create(kind="nope", size=10), 400, "validation_error")
        error = error_of(flow.create(surprise=1, size=10), 400, "validation_error")
        assert "surprise" in error["details"]

    def test_without_a_token_nothing_is_created(self, api: FlaskClient) -> None:
        body = {"filename": "a.png", "filetype": "image/png", "size": 10}
        error_of(api.post("/images/multipart", json=body), 401, "unauthorized")


class TestSigning:
    def test_each_part_gets_a_url_pinning_its_md5(
        self, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        answer = flow.sign()
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
        parts = answer.json["parts"]
        assert [p["part_number"] for p in parts] == [1, 2, 3]
        for part in parts:
            assert set(part) == {"part_number", "url", "headers", "expires_at"}
            assert part["headers"] == {"Content-MD5": md5_b64(flow.parts[part["part_number"]])}
            assert f"partNumber={part['part_number']}" in part["url"]
            assert "content-length" in part["url"].lower()  # signed (X-Amz-SignedHeaders)

    def test_a_part_url_ends_as_announced_and_never_after_the_upload(
        self, big_app: Flask, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        deadline = datetime.fromisoformat(flow.upload["expires_at"])
        for part in flow.sign().json["parts"]:
            assert datetime.fromisoformat(part["expires_at"]) == signed_until(part["url"])
            assert signed_until(part["url"]) <= deadline
        # Near the upload's deadline a part URL ends exactly at it, not a second later.
        soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
        broker_of(big_app).db.uploads.collection.update_one(
            {"_id": flow.upload_id}, {"$set": {"expires_at": soon}}
        )
        for part in flow.sign().json["parts"]:
            assert datetime.fromisoformat(part["expires_at"]) == signed_until(part["url"]) == soon

    @pytest.mark.parametrize(
        ("parts", "field"),
        [
            ([{"part_number": 4, "content_md5": "AAAAAAAAAAAAAAAAAAAAAA=="}], "parts"),
            ([{"part_number": 0, "content_md5": "AAAAAAAAAAAAAAAAAAAAAA=="}], "parts"),
            ([{"part_number": 1, "content_md5": "short"}], "parts"),
            ([{"part_number": 1, "content_md5": "AAAAAAAAAAAAAAAAAAAAAA=="}] * 2, "parts"),
            ([{"part_number": 1}], "parts"),
            ([], "parts"),
            (
                [{"part_number": n, "content_md5": "AAAAAAAAAAAAAAAAAAAAAA=="} for n in range(101)],
                "parts",
            ),
        ],
    )
    def test_bad_requests_are_refused_and_sign_nothing(
        self, api: FlaskClient, eleven_mib: bytes, parts: list[dict[str, Any]], field: str
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        answer = api.post(
            f"/images/multipart/{flow.upload_id}/parts", json={"parts": parts}, headers=auth()
        )
        error = error_of(answer, 400, "validation_error")
        assert field in error["details"]

    def test_someone_elses_or_an_unknown_upload_is_not_found(
        self, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        mallory = Multipart(api, eleven_mib, sub="mallory", upload=flow.upload)
        error_of(mallory.sign(1), 404, "not_found")
        error_of(mallory.listed(), 404, "not_found")
        error_of(mallory.complete(), 404, "not_found")
        error_of(mallory.abort(), 404, "not_found")
        # An admin is no exception: uploads are their owner's alone, as confirm's are.
        admin = api.post(
            f"/images/multipart/{flow.upload_id}/parts",
            json={"parts": [{"part_number": 1, "content_md5": md5_b64(flow.parts[1])}]},
            headers=auth("root", admin=True),
        )
        error_of(admin, 404, "not_found")
        stranger = Multipart(api, eleven_mib, upload={**(flow.upload or {}), "upload_id": "0" * 32})
        error_of(stranger.sign(1, md5={1: md5_b64(b"")}), 404, "not_found")
        # A presigned (single PUT) upload's id is not a multipart upload's.
        single = api.post(
            "/images/presign-upload",
            json={
                "filename": "a.png",
                "filetype": "image/png",
                "size": 10,
                "content_md5": md5_b64(b"0123456789"),
            },
            headers=auth(),
        )
        flow_single = Multipart(
            api, eleven_mib, upload={**(flow.upload or {}), "upload_id": single.json["upload_id"]}
        )
        error_of(flow_single.listed(), 404, "not_found")
        # And the owner still can.
        assert flow.sign(1).status_code == 200


class TestLifecycle:
    def test_complete_records_the_image_once(
        self, api: FlaskClient, big_app: Flask, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        flow.send()
        listed = flow.listed()
        assert listed.status_code == 200
        assert listed.json["parts"] == [
            {"part_number": n, "etag": etag_of(part), "size": len(part)}
            for n, part in flow.parts.items()
        ]
        first = flow.complete()
        assert first.status_code == 201, first.json
        image = first.json["image"]
        assert (image["size"], image["key"], image["content_type"]) == (
            len(eleven_mib),
            flow.upload["key"] if flow.upload else None,
            "image/png",
        )
        assert (image["width"], image["height"]) == (4, 3)
        # Completing again (a lost answer) gives the same image.
        again = flow.complete()
        assert again.status_code == 200 and again.json["image"] == image
        # Anything else on a finished upload is a conflict.
        error_of(flow.sign(1), 409, "conflict")
        error_of(flow.listed(), 409, "conflict")
        error_of(flow.abort(), 409, "conflict")
        # A multipart upload's key is not confirmed as a presigned one.
        confirm = api.post("/images", json={"key": image["key"]}, headers=auth())
        assert confirm.status_code == 200 and confirm.json["image"]["id"] == image["id"]
        listing = api.get("/images", headers=auth()).json["images"]
        assert [i["id"] for i in listing] == [image["id"]]

    def test_confirm_does_not_take_a_multipart_upload(
        self, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        flow.send()
        assert flow.upload is not None
        error = error_of(
            api.post("/images", json={"key": flow.upload["key"]}, headers=auth()), 404, "not_found"
        )
        assert "/complete" in error["message"]
        assert flow.complete().status_code == 201

    def test_a_wrong_part_list_changes_nothing(
        self, api: FlaskClient, big_app: Flask, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        flow.send()
        etags = [(n, etag_of(part)) for n, part in flow.parts.items()]
        for wrong in (
            etags[:2],  # one missing
            [etags[1], etags[0], etags[2]],  # out of order
            [etags[0], etags[0], etags[1], etags[2]],  # twice
            [etags[0], (2, etag_of(b"other bytes")), etags[2]],  # a foreign part
            [*etags, (4, etags[0][1])],  # one too many
        ):
            error_of(flow.complete(wrong), 422, "upload_invalid")
        assert api.get("/images", headers=auth()).json["images"] == []
        assert flow.complete([(n, f'"{e.upper()}"') for n, e in etags]).status_code == 201

    def test_a_part_never_signed_cannot_be_completed(
        self, api: FlaskClient, eleven_mib: bytes
    ) -> None:
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        flow.send(1, 2)
        error = error_of(flow.complete(), 422, "upload_invalid")
        assert "part 3 was never signed" in error["message"]

    def test_a_big_part_list_is_read_beyond_the_body_limit(
        self, make_app: Callable[..., Flask], eleven_mib: bytes
    ) -> None:
        app = make_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES, BROKER_MAX_BODY_BYTES="1024")
        flow = Multipart(app.test_client(), eleven_mib).created(part_size=5 * MiB)
        many = [(n, "0" * 32) for n in range(1, 5001)]  # ~250 KB of JSON
        error = error_of(flow.complete(many), 422, "upload_invalid")
        assert "ascending" not in error["message"]
        # Any other body keeps the app's limit.
        error_of(flow.sign(1, md5={1: "A" * 1024}), 413, "too_large")

    def test_abort_drops_the_upload_and_gives_back_the_quota(
        self, make_app: Callable[..., Flask], eleven_mib: bytes
    ) -> None:
        app = make_app(
            BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES,
            BROKER_QUOTA_MAX_BYTES=str(len(eleven_mib) + 10),
        )
        broker = broker_of(app)
        api = app.test_client()
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        # Held from create on: a second upload of the same size does not fit.
        error = error_of(Multipart(api, eleven_mib).create(), 413, "too_large")
        assert "quota" in error["details"]
        assert broker.db.quotas.usage("alice").bytes == len(eleven_mib)
        flow.send(1)
        assert flow.abort().status_code == 204
        assert broker.db.quotas.usage("alice").bytes == 0
        assert (
            broker.bucket.client.list_multipart_uploads(Bucket=broker.bucket.name).get(
                "Uploads", []
            )
            == []
        )
        error_of(flow.sign(2), 409, "conflict")
        error_of(flow.complete(), 409, "conflict")
        error_of(flow.abort(), 409, "conflict")
        # The quota is free again.
        assert Multipart(api, eleven_mib).create().status_code == 201

    def test_complete_verifies_the_object_as_confirm_does(
        self, api: FlaskClient, big_app: Flask
    ) -> None:
        # Declared a PNG, sent as something else: joined, then refused and deleted.
        data = b"GIF89a" + bytes(6 * MiB)
        flow = Multipart(api, data).created(part_size=5 * MiB)
        flow.send()
        error = error_of(flow.complete(), 422, "upload_invalid")
        assert (
            error["message"] == "filetype: the object is a image/gif image, image/png was declared"
        )
        broker = broker_of(big_app)
        assert flow.upload is not None and broker.bucket.head(flow.upload["key"]) is None
        assert broker.db.quotas.usage("alice").bytes == 0
        error_of(flow.complete(), 409, "conflict")

    def test_the_sweep_aborts_an_overdue_upload(
        self, api: FlaskClient, big_app: Flask, eleven_mib: bytes
    ) -> None:
        broker = broker_of(big_app)
        flow = Multipart(api, eleven_mib).created(part_size=5 * MiB)
        flow.send(1)
        overdue = broker.db.uploads.get_for_owner(flow.upload_id, "alice")
        assert overdue is not None
        # Move the deadline into the past, as time would.
        past = overdue.confirm_by - timedelta(days=2)
        broker.db.uploads.collection.update_one(
            {"_id": flow.upload_id}, {"$set": {"confirm_by": past, "expires_at": past}}
        )
        report = sweep(broker)
        assert report.expired_uploads == 1
        uploads = broker.bucket.client.list_multipart_uploads(Bucket=broker.bucket.name)
        assert uploads.get("Uploads", []) == []
        assert broker.db.quotas.usage("alice").bytes == 0
        error = error_of(flow.complete(), 409, "conflict")
        assert "expired" in error["message"]


def test_config_publishes_the_multipart_limits(api: FlaskClient) -> None:
    config = api.get("/config", headers=auth()).json
    assert config["multipart"] == {
        "threshold": 16 * MiB,
        "part_size": 8 * MiB,
        "min_part_size": 5 * MiB,
        "max_part_size": 5 * 1024 * MiB,
        "max_parts": 10_000,
        "parts_per_call": 100,
        "max_single_upload_bytes": 64 * MiB,
        "expires": 86400,
    }


def test_one_put_is_refused_above_5_gib(make_app: Callable[..., Flask]) -> None:
    app = make_app(BROKER_MAX_UPLOAD_BYTES=str(6 * 1024 * MiB))
    body = {
        "filename": "a.png",
        "filetype": "image/png",
        "size": 5 * 1024 * MiB + 1,
        "content_md5": md5_b64(b""),
    }
    error = error_of(
        app.test_client().post("/images/presign-upload", json=body, headers=auth()),
        413,
        "too_large",
    )
    assert "/images/multipart" in error["message"]
    assert (
        app.test_client()
        .get("/config", headers=auth())
        .json["multipart"]["max_single_upload_bytes"]
        == 5 * 1024 * MiB
    )
