"""The ``flask`` commands: tokens, indexes, bucket CORS and the sweeper; RS256 end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from tests.api.conftest import Uploader, put_to_bucket
from tests.helpers import JWT_SECRET, auth, png_bytes


def run(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result


def test_create_token_makes_working_tokens(app: Flask) -> None:
    user = run(app, "create-token", "carol").output.strip()
    admin = run(app, "create-token", "root", "--admin", "--ttl", "60").output.strip()
    claims = jwt.decode(admin, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "root" and claims["roles"] == ["admin"]
    assert 50 <= claims["exp"] - claims["iat"] <= 60
    client = app.test_client()
    assert client.get("/images", headers={"Authorization": f"Bearer {user}"}).status_code == 200
    assert (
        client.get("/images?owner=x", headers={"Authorization": f"Bearer {user}"}).status_code
        == 403
    )
    assert (
        client.get("/images?owner=x", headers={"Authorization": f"Bearer {admin}"}).status_code
        == 200
    )


def test_ensure_indexes_is_idempotent(app: Flask) -> None:
    first = run(app, "ensure-indexes").output.split()
    assert (
        "key_unique" in first and "one_primary_per_owner_kind" in first and "purge_at_ttl" in first
    )
    assert run(app, "ensure-indexes").output.split() == first


def test_apply_cors_sets_the_configured_origins(make_app: Any) -> None:
    app = make_app(BROKER_CORS_ORIGINS="https://a.example,https://b.example")
    output = json.loads(run(app, "apply-cors").output)
    rules = app.extensions["broker"].bucket.get_cors()
    assert rules == output["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["https://a.example", "https://b.example"]
    assert "PUT" in rules[0]["AllowedMethods"] and "ETag" in rules[0]["ExposeHeaders"]


def test_sweep_deletes_abandoned_uploads(app: Flask) -> None:
    client = app.test_client()
    data = png_bytes()
    presigned = client.post(
        "/images/presign-upload",
        json={"filename": "a.png", "filetype": "image/png", "size": len(data)},
        headers=auth(),
    ).json
    put_to_bucket(presigned, data)
    broker = app.extensions["broker"]
    assert json.loads(run(app, "sweep").output) == {"expired_uploads": 0, "finished_deletes": 0}
    assert broker.bucket.head(presigned["key"]) is not None
    broker.db.uploads.collection.update_one(
        {"key": presigned["key"]},
        {"$set": {"confirm_by": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    assert json.loads(run(app, "sweep").output) == {"expired_uploads": 1, "finished_deletes": 0}
    assert broker.bucket.head(presigned["key"]) is None
    confirm = client.post("/images", json={"key": presigned["key"]}, headers=auth())
    assert confirm.status_code == 409


def test_sweep_finishes_interrupted_deletes(app: Flask, upload: Uploader) -> None:
    image = upload().image
    broker = app.extensions["broker"]
    broker.db.images.collection.update_one(
        {"key": image["key"]}, {"$set": {"deleting_at": datetime.now(UTC) - timedelta(minutes=5)}}
    )
    assert app.test_client().get(f"/images/{image['id']}", headers=auth()).status_code == 404
    assert json.loads(run(app, "sweep").output) == {"expired_uploads": 0, "finished_deletes": 1}
    assert broker.bucket.head(image["key"]) is None
    assert broker.db.images.collection.count_documents({}) == 0


def _rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_rs256_tokens_verify_with_the_public_key(make_app: Any) -> None:
    private, public = _rsa_keys()
    app = make_app(BROKER_JWT_SECRET="", BROKER_JWT_PUBLIC_KEY=public)
    client = app.test_client()
    now = datetime.now(UTC)
    claims = {"sub": "dave", "iat": now, "exp": now + timedelta(minutes=5)}
    good = jwt.encode(claims, private, algorithm="RS256")
    assert client.get("/images", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    other_private, _ = _rsa_keys()
    forged = jwt.encode(claims, other_private, algorithm="RS256")
    assert client.get("/images", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    # HS/RS confusion: an HS256 token "signed" with the public key must not pass.
    confused = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    assert client.get("/images", headers={"Authorization": f"Bearer {confused}"}).status_code == 401


def test_create_token_with_rs256_needs_the_private_key(make_app: Any) -> None:
    private, public = _rsa_keys()
    without = make_app(BROKER_JWT_SECRET="", BROKER_JWT_PUBLIC_KEY=public)
    result = without.test_cli_runner().invoke(args=["create-token", "x"])
    assert result.exit_code != 0 and "BROKER_JWT_PRIVATE_KEY" in result.output
    signing = make_app(
        BROKER_JWT_SECRET="", BROKER_JWT_PUBLIC_KEY=public, BROKER_JWT_PRIVATE_KEY=private
    )
    token = run(signing, "create-token", "erin").output.strip()
    assert (
        signing.test_client()
        .get("/images", headers={"Authorization": f"Bearer {token}"})
        .status_code
        == 200
    )
