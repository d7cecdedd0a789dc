"""The ``flask`` commands: tokens, indexes, bucket CORS and the sweeper; RS256 end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import jwt
import pytest
from botocore.exceptions import EndpointConnectionError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from broker import domain
from broker.extension import Broker
from tests.support.apps import broker_of
from tests.support.images import png_bytes
from tests.support.tokens import JWT_SECRET, auth, bearer
from tests.support.upload import Uploader, pending_upload, put


def run(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result


def test_the_commands_are_top_level_under_their_contract_names(app: Flask) -> None:
    assert set(app.cli.list_commands(click.Context(app.cli))) == {
        "apply-cors",
        "apply-lifecycle",
        "block-public-access",
        "create-token",
        "ensure-indexes",
        "recount-quotas",
        "setup-bucket",
        "sweep",
        "worker",
    }


def test_create_token_makes_working_tokens(app: Flask, upload: Uploader) -> None:
    # Another user's private image tells the roles apart: a user does not see it, an admin
    # sees and changes it, a reader sees it and changes nothing.
    image = upload(sub="x").image
    user = run(app, "create-token", "carol").output.strip()
    admin = run(app, "create-token", "root", "--admin", "--ttl", "60").output.strip()
    reader = run(app, "create-token", "app-backend", "--reader").output.strip()
    claims = jwt.decode(admin, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "root" and claims["roles"] == ["admin"]
    assert 50 <= claims["exp"] - claims["iat"] <= 60
    assert jwt.decode(reader, JWT_SECRET, algorithms=["HS256"])["roles"] == ["reader"]
    client = app.test_client()
    path = f"/images/{image['id']}"
    seen = {}
    for name, token in (("user", user), ("admin", admin), ("reader", reader)):
        headers = bearer(token)
        seen[name] = (
            client.get("/images", headers=headers).status_code,
            client.get(path, headers=headers).status_code,
            client.patch(path, json={"caption": name}, headers=headers).status_code,
        )
    assert seen == {"user": (200, 404, 404), "admin": (200, 200, 200), "reader": (200, 200, 403)}


def test_ensure_indexes_makes_every_index_then_changes_nothing(
    make_app: Any, own_database: str
) -> None:
    app = make_app(prepare=False, BROKER_MONGODB_DB=own_database)
    first = run(app, "ensure-indexes").output.split()
    assert (
        "key_unique" in first and "one_primary_per_owner_kind" in first and "purge_at_ttl" in first
    )
    assert run(app, "ensure-indexes").output.split() == first


def test_apply_cors_sets_the_configured_origins(make_app: Any) -> None:
    app = make_app(BROKER_CORS_ORIGINS="https://a.example,https://b.example")
    output = json.loads(run(app, "apply-cors").output)
    rules = broker_of(app).bucket.get_cors()
    assert rules == output["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["https://a.example", "https://b.example"]
    assert "PUT" in rules[0]["AllowedMethods"] and "ETag" in rules[0]["ExposeHeaders"]


def test_sweep_deletes_abandoned_uploads(app: Flask, broker: Broker) -> None:
    client = app.test_client()
    presigned = pending_upload(client)
    assert json.loads(run(app, "sweep").output) == {
        "expired_uploads": 0,
        "finished_deletes": 0,
        "failed": 0,
        "cleaned_uploads": 0,
        "orphan_variants": 0,
    }
    assert broker.bucket.head(presigned["key"]) is not None
    broker.db.uploads.collection.update_one(
        {"key": presigned["key"]},
        {"$set": {"confirm_by": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    assert json.loads(run(app, "sweep").output) == {
        "expired_uploads": 1,
        "finished_deletes": 0,
        "failed": 0,
        "cleaned_uploads": 0,
        "orphan_variants": 0,
    }
    assert broker.bucket.head(presigned["key"]) is None
    confirm = client.post("/images", json={"key": presigned["key"]}, headers=auth())
    assert confirm.status_code == 409


def test_a_sweeper_that_lost_the_claim_leaves_the_upload_to_the_winner(
    app: Flask, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    presigned = pending_upload(app.test_client())
    uploads = broker.db.uploads
    uploads.collection.update_one(
        {"key": presigned["key"]},
        {"$set": {"confirm_by": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    found_overdue = uploads.overdue

    def overdue_but_another_host_claims_them(before: datetime, limit: int) -> Any:
        found = found_overdue(before, limit)
        for pending in found:  # cron on another host, a moment faster
            assert uploads.close(pending.id, domain.EXPIRING)
        return found

    monkeypatch.setattr(uploads, "overdue", overdue_but_another_host_claims_them)
    deleted: list[str] = []
    monkeypatch.setattr(broker.bucket, "delete", deleted.append)
    report = json.loads(run(app, "sweep").output)
    # The claim answered "expiring" (the state the upload is in), but not to this sweeper.
    assert report["expired_uploads"] == 0 and deleted == []


def test_sweep_finishes_interrupted_deletes(app: Flask, broker: Broker, upload: Uploader) -> None:
    image = upload().image
    broker.db.images.collection.update_one(
        {"key": image["key"]}, {"$set": {"deleting_at": datetime.now(UTC) - timedelta(minutes=5)}}
    )
    assert app.test_client().get(f"/images/{image['id']}", headers=auth()).status_code == 404
    assert json.loads(run(app, "sweep").output) == {
        "expired_uploads": 0,
        "finished_deletes": 1,
        "failed": 0,
        "cleaned_uploads": 0,
        "orphan_variants": 0,
    }
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
    assert client.get("/images", headers=bearer(good)).status_code == 200
    other_private, _ = _rsa_keys()
    forged = jwt.encode(claims, other_private, algorithm="RS256")
    assert client.get("/images", headers=bearer(forged)).status_code == 401
    # HS/RS confusion: an HS256 token "signed" with the public key must not pass.
    confused = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    assert client.get("/images", headers=bearer(confused)).status_code == 401


def test_create_token_with_rs256_needs_the_private_key(make_app: Any) -> None:
    private, public = _rsa_keys()
    without = make_app(BROKER_JWT_SECRET="", BROKER_JWT_PUBLIC_KEY=public)
    result = without.test_cli_runner().invoke(args=["create-token", "x"])
    assert result.exit_code != 0 and "BROKER_JWT_PRIVATE_KEY" in result.output
    signing = make_app(
        BROKER_JWT_SECRET="", BROKER_JWT_PUBLIC_KEY=public, BROKER_JWT_PRIVATE_KEY=private
    )
    token = run(signing, "create-token", "erin").output.strip()
    assert signing.test_client().get("/images", headers=bearer(token)).status_code == 200


def test_apply_lifecycle_expires_pending_objects_and_multipart(make_app: Any) -> None:
    app = make_app(BROKER_PENDING_OBJECT_DAYS="3", BROKER_MULTIPART_ABORT_DAYS="2")
    output = json.loads(run(app, "apply-lifecycle").output)
    rules = {rule["ID"]: rule for rule in broker_of(app).bucket.get_lifecycle()}
    assert len(rules) == len(output["Rules"]) == 2
    expire = rules["broker-expire-unconfirmed-uploads"]
    assert expire["Filter"] == {"Tag": {"Key": "broker-state", "Value": "pending"}}
    assert expire["Expiration"] == {"Days": 3}
    abort = rules["broker-abort-incomplete-multipart"]
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}


def test_block_public_access(app: Flask, broker: Broker) -> None:
    run(app, "block-public-access")
    bucket = broker.bucket
    block = bucket.client.get_public_access_block(Bucket=bucket.name)
    assert block["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


def test_apply_cors_refuses_a_broken_template(app: Flask, tmp_path: Any) -> None:
    broken = tmp_path / "cors.json"
    broken.write_text('{"CORSRules": []}')
    result = app.test_cli_runner().invoke(args=["apply-cors", "--file", str(broken)])
    assert result.exit_code != 0 and "CORSRules" in result.output


def _overdue_upload(app: Flask) -> dict[str, Any]:
    presigned = pending_upload(app.test_client())
    broker_of(app).db.uploads.collection.update_one(
        {"key": presigned["key"]},
        {"$set": {"confirm_by": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    return presigned


def test_sweep_retries_an_upload_whose_object_delete_failed(
    app: Flask, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    presigned = _overdue_upload(app)
    real_delete = broker.bucket.client.delete_object

    def unreachable(**kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://s3.internal")

    monkeypatch.setattr(broker.bucket.client, "delete_object", unreachable)
    failed = app.test_cli_runner().invoke(args=["sweep"])
    assert failed.exit_code != 0 and "1 item(s) could not be swept" in failed.output
    assert '"failed": 1' in failed.output
    uploads = broker.db.uploads.collection
    assert uploads.find_one({"key": presigned["key"]})["state"] == "expiring"
    monkeypatch.setattr(broker.bucket.client, "delete_object", real_delete)
    # Until the takeover window passes, the first sweeper is presumed to be still at it.
    assert json.loads(run(app, "sweep").output)["expired_uploads"] == 0
    uploads.update_one(
        {"key": presigned["key"]}, {"$set": {"closed_at": datetime.now(UTC) - timedelta(minutes=2)}}
    )
    assert json.loads(run(app, "sweep").output)["expired_uploads"] == 1
    assert broker.bucket.head(presigned["key"]) is None
    assert uploads.find_one({"key": presigned["key"]})["state"] == "expired"
    confirm = app.test_client().post("/images", json={"key": presigned["key"]}, headers=auth())
    assert confirm.status_code == 409
    assert confirm.json["error"]["message"] == "the upload is no longer pending (expired)"


def test_confirm_losing_the_object_to_the_sweeper_midway_is_409(
    app: Flask, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    presigned = pending_upload(client)
    real_read = broker.bucket.read_head

    def sweeper_strikes(key: str, length: int) -> Any:
        # The sweeper wins the upload and deletes the object just before confirm reads it.
        assert broker.db.uploads.close(broker.db.uploads.for_owner(key, "alice").id, "expiring")
        broker.bucket.delete(key)
        return real_read(key, length)

    monkeypatch.setattr(broker.bucket, "read_head", sweeper_strikes)
    response = client.post("/images", json={"key": presigned["key"]}, headers=auth())
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert broker.db.images.collection.count_documents({}) == 0


def test_setup_bucket_applies_everything_idempotently(make_app: Any) -> None:
    app = make_app(BROKER_CORS_ORIGINS="https://a.example")
    first = run(app, "setup-bucket", "--without-copy-policy").output.splitlines()
    assert first == ["cors: applied", "lifecycle: applied", "public-access block: applied"]
    again = run(app, "setup-bucket", "--without-copy-policy").output.splitlines()
    assert again == [line.replace("applied", "already in place") for line in first]
    bucket = broker_of(app).bucket
    assert bucket.get_policy() is None
    assert bucket.get_cors()[0]["AllowedOrigins"] == ["https://a.example"]
    assert bucket.get_public_access_block()["BlockPublicPolicy"] is True


def test_setup_bucket_takes_back_a_policy_the_store_applies_to_every_put(
    make_app: Any, upload: Uploader
) -> None:
    # moto evaluates a bucket policy without its conditions: the copy-refusing Deny would
    # refuse every upload. setup-bucket probes a plain PUT, removes the statement, says so.
    app = make_app()
    result = app.test_cli_runner().invoke(args=["setup-bucket"])
    assert result.exit_code != 0
    refused = "copy-refusing policy: failed: the storage applies the Deny to every PUT"
    assert refused in result.output
    assert "public-access block: applied" in result.output
    bucket = broker_of(app).bucket
    assert bucket.get_policy() is None
    assert upload().image["key"]  # uploads still work
    assert (
        bucket.client.list_objects_v2(Bucket=bucket.name, Prefix="broker-setup-probe")["KeyCount"]
        == 0
    )


def test_setup_bucket_says_what_failed(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    client = broker_of(app).bucket.client

    def refused(**kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://s3.internal")

    monkeypatch.setattr(client, "put_bucket_policy", refused)
    result = app.test_cli_runner().invoke(args=["setup-bucket"])
    assert result.exit_code != 0
    assert "copy-refusing policy: failed" in result.output
    assert "public-access block: applied" in result.output  # the others still ran
    assert "s3.internal" not in result.output


def test_sweep_cleans_the_keys_of_ended_uploads_once_their_urls_died(
    app: Flask, broker: Broker, upload: Uploader
) -> None:
    client = app.test_client()
    live = upload().image
    deleted = upload(data=png_bytes(5, 5))
    assert client.delete(f"/images/{deleted.image['id']}", headers=auth()).status_code == 204
    html = b"<html><script>alert(1)</script></html>"
    rejected = pending_upload(client, html)
    assert client.post("/images", json={"key": rejected["key"]}, headers=auth()).status_code == 422
    # The URLs still live: a replay stores an object nobody verified or recorded.
    put(deleted.grant, deleted.data)
    put(rejected, html)
    assert broker.bucket.head(deleted.image["key"]) is not None
    assert broker.bucket.head(rejected["key"]) is not None

    uploads = broker.db.uploads.collection
    assert json.loads(run(app, "sweep").output)["cleaned_uploads"] == 0  # URLs alive
    uploads.update_many({}, {"$set": {"sweep_after": datetime.now(UTC) - timedelta(seconds=1)}})
    assert json.loads(run(app, "sweep").output)["cleaned_uploads"] == 3
    assert broker.bucket.head(deleted.image["key"]) is None
    assert broker.bucket.head(rejected["key"]) is None
    assert broker.bucket.head(live["key"]) is not None  # a live image is never touched
    # Cleaned once: the records may now be purged, and the next sweep has nothing to do.
    assert uploads.count_documents({"sweep_after": {"$exists": True}}) == 0
    assert uploads.count_documents({"purge_at": {"$exists": True}}) == 3
    assert json.loads(run(app, "sweep").output)["cleaned_uploads"] == 0
