"""Every failure is the contract's envelope; health, readiness and the OpenAPI document."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from broker import schemas
from broker.devservers import free_port
from broker.errors import Unavailable
from broker.extension import Broker
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import presign


def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


class TestEnvelope:
    def test_unknown_route_is_404(self, client: FlaskClient) -> None:
        assert_envelope(client.get("/nope"), 404, "not_found")

    def test_wrong_method_is_405_with_allow(self, client: FlaskClient) -> None:
        response = client.put("/healthz")
        assert_envelope(response, 405, "method_not_allowed")
        assert "GET" in response.headers["Allow"]

    def test_body_over_the_limit_is_413_before_parsing(self, make_app: Any) -> None:
        client = make_app(BROKER_MAX_BODY_BYTES="100").test_client()
        response = client.post(
            "/images/presign-upload",
            data="{" + " " * 200 + "}",
            headers={**auth(), "Content-Type": "application/json"},
        )
        assert_envelope(response, 413, "too_large")

    @pytest.mark.parametrize(
        ("data", "content_type"),
        [
            ("not json", "application/json"),
            ("[1, 2]", "application/json"),
            ("a=b", "text/plain"),
            ("", "application/json"),
        ],
    )
    def test_non_object_bodies_are_400(
        self, client: FlaskClient, data: str, content_type: str
    ) -> None:
        response = client.post(
            "/images/presign-upload", data=data, headers={**auth(), "Content-Type": content_type}
        )
        assert_envelope(response, 400, "validation_error")

    def test_unexpected_exception_is_a_generic_500(
        self,
        broker: Broker,
        client: FlaskClient,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def explode(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("secret detail mongodb://user:pw@internal")

        monkeypatch.setattr(broker.db.images, "page", explode)
        with caplog.at_level(logging.ERROR):
            response = client.get("/images", headers=auth())
        error = assert_envelope(response, 500, "internal_error")
        assert error["message"] == "internal error"
        assert b"secret" not in response.data and b"Traceback" not in response.data
        assert "secret detail" in caplog.text

    def test_database_down_is_503_with_retry_after(self, make_app: Any) -> None:
        app = make_app(
            prepare=False,
            MONGODB_URI=f"mongodb://127.0.0.1:{closed_port()}/?directConnection=true",
            BROKER_MONGODB_TIMEOUT_MS="300",
        )
        broker_of(app).bucket.ensure_bucket()
        response = app.test_client().get("/images", headers=auth())
        error = assert_envelope(response, 503, "unavailable")
        assert response.headers["Retry-After"].isdigit()
        assert "127.0.0.1" not in response.get_data(as_text=True)
        assert error["message"] == "the database is unavailable, retry later"
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503
        assert ready.json["checks"] == {"mongodb": "unavailable", "s3": "ok"}

    def test_storage_down_is_503_and_names_no_endpoint(self, make_app: Any) -> None:
        port = closed_port()
        broken = make_app(
            prepare=False,
            BROKER_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            BROKER_S3_CONNECT_TIMEOUT="0.3",
        )
        client = broken.test_client()
        # Presigning needs no S3 call, so it keeps working while the bucket is unreachable.
        presigned = presign(client)
        assert presigned.status_code == 201
        response = client.post("/images", json={"key": presigned.json["key"]}, headers=auth())
        assert_envelope(response, 503, "unavailable")
        assert str(port) not in response.get_data(as_text=True)
        assert broker_of(broken).db.images.collection.count_documents({}) == 0
        assert client.get("/readyz").json["checks"] == {"mongodb": "ok", "s3": "unavailable"}


class TestOperations:
    def test_healthz_says_ok(self, client: FlaskClient) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json["status"] == "ok"

    def test_healthz_answers_what_jsonify_would(self, app: Flask, client: FlaskClient) -> None:
        # Encoded by the broker's own encoder, not jsonify: it must stay what the schema dumps,
        # as jsonify writes it (compact, trailing newline), with jsonify's content type.
        response = client.get("/healthz")
        with app.app_context():
            expected = jsonify(schemas.status_response.dump({"status": "ok"}))
        assert response.get_data() == expected.get_data()
        assert response.headers["Content-Type"] == expected.headers["Content-Type"]
        assert response.headers["Content-Length"] == str(len(expected.get_data()))

    def test_readyz_is_200_when_both_dependencies_answer(self, client: FlaskClient) -> None:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json["checks"] == {"mongodb": "ok", "s3": "ok"}

    def test_readyz_reports_what_is_down(
        self, broker: Broker, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def down() -> None:
            raise Unavailable()

        monkeypatch.setattr(broker.bucket, "ping", down)
        response = client.get("/readyz")
        assert_envelope(response, 503, "unavailable")
        assert response.headers["Retry-After"].isdigit()
        assert response.json["checks"] == {"mongodb": "ok", "s3": "unavailable"}

    def test_openapi_documents_every_route(self, app: Flask, client: FlaskClient) -> None:
        document = client.get("/openapi.json").json
        assert document["openapi"].startswith("3.")
        documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
        for rule in app.url_map.iter_rules():
            # Static assets (the admin UI, the browser module) are not part of the API.
            if rule.endpoint == "static" or rule.endpoint.startswith("admin."):
                continue
            path = re.sub(r"<(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method.lower()) in documented, (path, method)
        presign = document["paths"]["/images/presign-upload"]["post"]
        assert "201" in presign["responses"] and "413" in presign["responses"]
        assert (
            document["components"]["schemas"]["PresignUploadRequest"]["additionalProperties"]
            is False
        )


class TestClientConfig:
    def test_exposes_the_configured_limits(self, make_app: Any) -> None:
        app = make_app(BROKER_ALLOWED_TYPES="image/png,image/webp", BROKER_MAX_UPLOAD_BYTES="5000")
        response = app.test_client().get("/config", headers=auth())
        assert response.status_code == 200
        body = response.json
        assert body["allowed_types"] == ["image/png", "image/webp"]
        assert body["extensions"] == {"image/png": ".png", "image/webp": ".webp"}
        assert body["max_upload_bytes"] == 5000
        assert (
            body["kinds"] == ["profile", "gallery", "cover"] and body["default_kind"] == "gallery"
        )

    def test_names_the_variants_a_client_may_ask_for(self, make_app: Any) -> None:
        app = make_app(BROKER_VARIANTS="thumb:320x320,avatar:96x96:cover")
        body = app.test_client().get("/config", headers=auth()).json
        assert body["variants"] == [
            {"name": "thumb", "width": 320, "height": 320, "cover": False},
            {"name": "avatar", "width": 96, "height": 96, "cover": True},
        ]
        assert body["variant_content_type"] == "image/webp"
        off = make_app(BROKER_VARIANTS="").test_client().get("/config", headers=auth()).json
        assert off["variants"] == []

    def test_config_needs_a_token(self, client: FlaskClient) -> None:
        assert_envelope(client.get("/config"), 401, "unauthorized")
