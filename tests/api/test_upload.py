"""Presign and confirm through the Flask client, with real PUTs to the S3 server."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

import broker.domain as broker_domain
from broker.extension import Broker
from tests.support.apps import broker_of
from tests.support.images import jpeg_bytes, md5_b64, png_bytes
from tests.support.s3 import signed_until
from tests.support.tokens import auth
from tests.support.upload import Uploader, pending_upload, presign, presign_body, put


def objects_in(app: Flask) -> list[str]:
    bucket = broker_of(app).bucket
    listed = bucket.client.list_objects_v2(Bucket=bucket.name)
    return [item["Key"] for item in listed.get("Contents", [])]


def images_in(app: Flask) -> list[dict[str, Any]]:
    return list(broker_of(app).db.images.collection.find())


class TestPresign:
    def test_grant_has_the_contract_shape(self, client: FlaskClient) -> None:
        response = presign(client)
        assert response.status_code == 201
        assert response.headers["Cache-Control"] == "no-store"
        body = response.json
        assert set(body) == {"upload_id", "key", "url", "method", "headers", "expires_at"}
        assert body["method"] == "PUT"
        assert body["headers"] == {
            "Content-Type": "image/png",
            "Cache-Control": "private",
            "Content-MD5": md5_b64(png_bytes()),
            "x-amz-acl": "bucket-owner-full-control",
            "x-amz-tagging": "broker-state=pending",
            "If-None-Match": "*",
        }
        assert re.fullmatch(r"alice/[0-9a-f]{32}\.png", body["key"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["expires_at"])
        expires = datetime.fromisoformat(body["expires_at"])
        assert timedelta(seconds=295) < expires - datetime.now(UTC) <= timedelta(seconds=300)

    @pytest.mark.parametrize("signer", ["fast", "boto3"])
    def test_expiry_announced_is_the_one_the_url_carries(
        self, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, signer: str
    ) -> None:
        # Late in a second, with the broker's clock a second behind botocore's (so the boto3
        # signer, which signs at its own instant, crosses a tick): the announced expiry is still
        # the URL's to the second.
        app = make_app(BROKER_SIGNER=signer)
        late = datetime.now(UTC).replace(microsecond=999_000) - timedelta(seconds=1)
        monkeypatch.setattr(broker_domain, "utcnow", lambda: late)
        body = presign(app.test_client()).json
        announced = datetime.fromisoformat(body["expires_at"])
        assert announced == signed_until(body["url"])
        recorded = broker_of(app).db.uploads.collection.find_one({"_id": body["upload_id"]})
        assert recorded is not None
        deadline = recorded["expires_at"].replace(tzinfo=UTC)
        if signer == "fast":  # it signs at the instant the record was made
            assert deadline == announced
        else:  # boto3 signs later, so its URL may outlive the deadline (confirm has a grace)
            assert deadline < announced

    def test_url_signs_type_length_md5_and_write_once(self, client: FlaskClient) -> None:
        url = presign(client).json["url"]
        signed = (
            "cache-control%3Bcontent-length%3Bcontent-md5%3Bcontent-type%3Bhost%3Bif-none-match"
            "%3Bx-amz-acl%3Bx-amz-tagging"
        )
        assert f"X-Amz-SignedHeaders={signed}&" in url
        assert "X-Amz-Expires=300" in url

    def test_a_checksum_is_required(self, broker: Broker, client: FlaskClient) -> None:
        body = presign_body(omit=("content_md5",))
        response = client.post("/images/presign-upload", json=body, headers=auth())
        assert response.status_code == 400
        assert response.json["error"]["code"] == "validation_error"
        assert list(response.json["error"]["details"]) == ["content_md5"]
        assert broker.db.uploads.collection.count_documents({}) == 0
        sha256 = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
        with_sha = client.post(
            "/images/presign-upload", json={**body, "checksum_sha256": sha256}, headers=auth()
        )
        assert with_sha.status_code == 201

    def test_without_the_checksum_rule_the_url_still_signs_type_length_and_write_once(
        self, make_app: Any
    ) -> None:
        client = make_app(BROKER_REQUIRE_CHECKSUM="false").test_client()
        url = presign(client, omit=("content_md5",)).json["url"]
        signed = (
            "cache-control%3Bcontent-length%3Bcontent-type%3Bhost%3Bif-none-match"
            "%3Bx-amz-acl%3Bx-amz-tagging"
        )
        assert f"X-Amz-SignedHeaders={signed}&" in url

    def test_tagging_can_be_turned_off(self, make_app: Any) -> None:
        body = presign(
            make_app(BROKER_S3_TAGGING="false", BROKER_S3_OBJECT_ACL="").test_client()
        ).json
        assert "x-amz-tagging" not in body["headers"] and "x-amz-acl" not in body["headers"]
        signed = "cache-control%3Bcontent-length%3Bcontent-md5%3Bcontent-type%3Bhost"
        assert f"X-Amz-SignedHeaders={signed}%3Bif-none-match&" in body["url"]

    def test_filename_never_shapes_the_key(self, client: FlaskClient) -> None:
        body = presign(client, filename="../../evil.php.png", filetype="image/jpeg").json
        assert re.fullmatch(r"alice/[0-9a-f]{32}\.jpg", body["key"])

    def test_sha256_checksum_is_signed_when_given(self, client: FlaskClient) -> None:
        checksum = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
        body = presign(client, omit=("content_md5",), checksum_sha256=checksum).json
        assert body["headers"]["x-amz-checksum-sha256"] == checksum
        assert "x-amz-checksum-sha256" in body["url"]

    def test_expiry_comes_from_config(self, make_app: Any) -> None:
        client = make_app(BROKER_UPLOAD_EXPIRES="60").test_client()
        assert "X-Amz-Expires=60" in presign(client).json["url"]

    def test_type_not_allowed_is_415(self, client: FlaskClient) -> None:
        response = presign(client, filetype="image/svg+xml")
        assert response.status_code == 415
        assert response.json["error"]["code"] == "unsupported_type"

    def test_too_large_is_413(self, client: FlaskClient) -> None:
        response = presign(client, size=10 * 1024 * 1024 + 1)
        assert response.status_code == 413
        assert response.json["error"] == {
            "code": "too_large",
            "message": "size: must be at most 10485760",
            "details": {"size": ["must be at most 10485760"]},
        }

    def test_limits_come_from_config(self, make_app: Any) -> None:
        client = make_app(
            BROKER_MAX_UPLOAD_BYTES="50", BROKER_ALLOWED_TYPES="image/gif"
        ).test_client()
        assert presign(client, filetype="image/gif", size=51).status_code == 413
        assert presign(client, filetype="image/png", size=10).status_code == 415
        assert presign(client, filetype="image/gif", size=50).status_code == 201

    def test_kind_defaults_to_gallery_and_is_checked(
        self, broker: Broker, client: FlaskClient
    ) -> None:
        key = presign(client).json["key"]
        assert broker.db.uploads.collection.find_one({"key": key})["kind"] == "gallery"
        response = presign(client, kind="banner")
        assert response.status_code == 400
        assert response.json["error"]["details"] == {
            "kind": ["must be one of: profile, gallery, cover"]
        }

    def test_validation_errors_name_the_fields(self, client: FlaskClient) -> None:
        response = client.post(
            "/images/presign-upload",
            json={"filetype": "image/png", "size": "big", "extra": 1},
            headers=auth(),
        )
        assert response.status_code == 400
        error = response.json["error"]
        assert error["code"] == "validation_error"
        assert set(error["details"]) == {"filename", "size", "extra"}

    def test_bad_md5_is_a_validation_error(self, client: FlaskClient) -> None:
        response = presign(client, content_md5="not-an-md5")
        assert response.status_code == 400
        assert "content_md5" in response.json["error"]["details"]

    def test_refused_presign_records_nothing(self, broker: Broker, client: FlaskClient) -> None:
        presign(client, size=0)
        presign(client, filetype="text/html")
        assert broker.db.uploads.collection.count_documents({}) == 0


class TestConfirm:
    def test_full_flow_round_trips_the_bytes(self, client: FlaskClient, upload: Uploader) -> None:
        data = png_bytes(32, 16)
        result = upload(data=data, filename="Holiday.png", caption="sea")
        image = result.image
        assert image["key"] == result.grant["key"]
        assert image["owner"] == "alice"
        assert (image["width"], image["height"], image["size"]) == (32, 16, len(data))
        assert image["content_md5"] == md5_b64(data)
        assert (
            image["caption"] == "sea"
            and image["kind"] == "gallery"
            and image["is_primary"] is False
        )
        assert image["usage_count"] == 0 and image["last_used_at"] is None and image["tags"] == []
        signed = client.get(f"/images/{image['id']}/signed-url", headers=auth())
        fetched = requests.get(signed.json["url"], timeout=10)
        assert fetched.status_code == 200
        assert fetched.content == data
        assert fetched.headers["Content-Type"] == "image/png"

    def test_confirm_again_returns_the_same_image(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        first = upload()
        again = client.post("/images", json={"key": first.image["key"]}, headers=auth())
        assert again.status_code == 200
        assert again.json["image"] == first.image

    def test_kind_and_caption_given_at_confirm_override(self, client: FlaskClient) -> None:
        data = jpeg_bytes()
        body = pending_upload(
            client, data, filename="IMG_1.png", filetype="image/jpeg", caption="old"
        )
        confirmed = client.post(
            "/images",
            json={
                "key": body["key"],
                "kind": "cover",
                "caption": "new",
                "filename": "IMG_1.png",
                "filetype": "image/jpeg",
            },
            headers=auth(),
        )
        assert confirmed.status_code == 201
        assert confirmed.json["image"]["kind"] == "cover"
        assert confirmed.json["image"]["caption"] == "new"

    def test_filename_or_type_differing_from_presign_is_422(self, client: FlaskClient) -> None:
        data = png_bytes()
        body = pending_upload(client, data)
        for field, value in (("filename", "other.png"), ("filetype", "image/jpeg")):
            response = client.post(
                "/images", json={"key": body["key"], field: value}, headers=auth()
            )
            assert response.status_code == 422
            assert response.json["error"]["code"] == "upload_invalid"
            assert field in response.json["error"]["message"]

    def test_unknown_key_is_404(self, client: FlaskClient) -> None:
        response = client.post("/images", json={"key": "alice/nothing.png"}, headers=auth())
        assert response.status_code == 404

    def test_someone_elses_pending_upload_is_404(self, client: FlaskClient) -> None:
        data = png_bytes()
        body = pending_upload(client, data)
        response = client.post("/images", json={"key": body["key"]}, headers=auth("bob"))
        assert response.status_code == 404

    def test_missing_object_is_422_and_upload_stays_open(
        self, app: Flask, client: FlaskClient
    ) -> None:
        data = png_bytes()
        body = presign(client, data).json
        missing = client.post("/images", json={"key": body["key"]}, headers=auth())
        assert missing.status_code == 422
        assert "not found" in missing.json["error"]["message"]
        put(body, data)
        assert client.post("/images", json={"key": body["key"]}, headers=auth()).status_code == 201

    def test_wrong_size_is_rejected_deleted_and_closed(
        self, app: Flask, client: FlaskClient
    ) -> None:
        # moto does not enforce the signed length, so the object really is the wrong size here.
        data = png_bytes()
        body = presign(client, data, size=len(data) + 5).json
        put(body, data)
        response = client.post("/images", json={"key": body["key"]}, headers=auth())
        assert response.status_code == 422
        assert "size" in response.json["error"]["message"]
        assert objects_in(app) == []
        assert images_in(app) == []
        again = client.post("/images", json={"key": body["key"]}, headers=auth())
        assert again.status_code == 409
        assert again.json["error"]["code"] == "conflict"

    def test_html_declared_as_png_is_rejected(self, app: Flask, client: FlaskClient) -> None:
        data = b"<html><script>alert(1)</script></html>"
        body = pending_upload(client, data)
        response = client.post("/images", json={"key": body["key"]}, headers=auth())
        assert response.status_code == 422
        assert objects_in(app) == [] and images_in(app) == []

    def test_dimensions_over_max_pixels_are_rejected(self, make_app: Any) -> None:
        app = make_app(BROKER_MAX_PIXELS="100")
        client = app.test_client()
        data = png_bytes(20, 20)
        body = pending_upload(client, data)
        response = client.post("/images", json={"key": body["key"]}, headers=auth())
        assert response.status_code == 422
        assert "pixels" in response.json["error"]["message"]
        assert objects_in(app) == []

    def test_expired_upload_is_409(self, app: Flask, broker: Broker, client: FlaskClient) -> None:
        data = png_bytes()
        body = pending_upload(client, data)
        broker.db.uploads.collection.update_one(
            {"key": body["key"]}, {"$set": {"confirm_by": datetime.now(UTC) - timedelta(seconds=1)}}
        )
        response = client.post("/images", json={"key": body["key"]}, headers=auth())
        assert response.status_code == 409
        assert "expired" in response.json["error"]["message"]
        assert images_in(app) == []

    def test_confirm_body_is_strict(self, client: FlaskClient) -> None:
        response = client.post("/images", json={"key": "k", "size": 3}, headers=auth())
        assert response.status_code == 400
        assert response.json["error"]["details"] == {"size": ["Unknown field."]}


class TestObjectTags:
    def test_upload_is_pending_until_confirmed(self, broker: Broker, client: FlaskClient) -> None:
        data = png_bytes()
        body = pending_upload(client, data)
        bucket = broker.bucket

        def tags() -> dict[str, str]:
            tag_set = bucket.client.get_object_tagging(Bucket=bucket.name, Key=body["key"])[
                "TagSet"
            ]
            return {tag["Key"]: tag["Value"] for tag in tag_set}

        assert tags() == {"broker-state": "pending"}
        assert client.post("/images", json={"key": body["key"]}, headers=auth()).status_code == 201
        assert tags() == {"broker-state": "confirmed"}
