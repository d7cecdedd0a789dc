"""Per-user rate limits (429 + Retry-After) and per-user quotas (held from presign on)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from broker import create_app
from broker.db.quotas import Usage
from broker.db.rate_limits import RATE_LIMITS
from broker.extension import Broker
from broker.settings import ConfigError
from tests.support.apps import broker_of
from tests.support.images import png_bytes
from tests.support.tokens import auth
from tests.support.upload import pending_upload, presign


class TestRateLimits:
    def test_presign_limit_is_per_user_with_retry_after(self, make_app: Any) -> None:
        client = make_app(BROKER_RATE_LIMIT_PRESIGN="3/minute").test_client()
        statuses = [presign(client).status_code for _ in range(4)]
        assert statuses == [201, 201, 201, 429]
        refused = presign(client)
        assert refused.json["error"]["code"] == "rate_limited"
        # The sliding window admits the next presign once the 3 of this window, weighted by
        # what is left of the next one, leave room for it: at most a period and a third away.
        assert 1 <= int(refused.headers["Retry-After"]) <= 60 + 60 // 3
        # Another user has a budget of their own.
        assert presign(client, sub="bob").status_code == 201

    def test_signed_url_issuance_is_limited(self, make_app: Any) -> None:
        client = make_app(BROKER_RATE_LIMIT_SIGN="2/minute").test_client()
        statuses = [
            client.post("/images/signed-urls", json={"ids": ["x"]}, headers=auth()).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert client.get("/images/abc/signed-url", headers=auth()).status_code == 429

    def test_confirm_is_limited(self, make_app: Any) -> None:
        client = make_app(BROKER_RATE_LIMIT_CONFIRM="1/minute").test_client()
        first = client.post("/images", json={"key": "alice/x.png"}, headers=auth())
        assert first.status_code == 404
        assert (
            client.post("/images", json={"key": "alice/x.png"}, headers=auth()).status_code == 429
        )

    def test_empty_limit_turns_it_off(self, make_app: Any) -> None:
        client = make_app(BROKER_RATE_LIMIT_SIGN="").test_client()
        for _ in range(30):
            assert (
                client.post("/images/signed-urls", json={"ids": ["x"]}, headers=auth()).status_code
                == 200
            )

    def test_unauthenticated_calls_are_401_not_counted(self, make_app: Any) -> None:
        client = make_app(BROKER_RATE_LIMIT_PRESIGN="1/minute").test_client()
        for _ in range(3):
            assert client.post("/images/presign-upload", json={}).status_code == 401
        assert presign(client, b"x").status_code == 201

    def test_limits_shared_through_mongodb(self, make_app: Any, mongo_server: Any) -> None:
        storage = mongo_server.uri
        first = make_app(
            BROKER_RATE_LIMIT_PRESIGN="2/minute", BROKER_RATE_LIMIT_STORAGE_URI=storage
        )
        client = first.test_client()
        assert [presign(client, sub="shared").status_code for _ in range(3)] == [201, 201, 429]


class TestCounterStores:
    """Where the counters live: the broker's MongoDB unless told otherwise."""

    def test_by_default_in_the_brokers_database_with_a_ttl(self, make_app: Any) -> None:
        app = make_app(BROKER_RATE_LIMIT_SIGN="5/minute")
        app.test_client().get("/images/abc/signed-url", headers=auth())
        counters = broker_of(app).db.database[RATE_LIMITS]
        windows = list(counters.find())
        assert len(windows) == 1, windows
        window = windows[0]
        # One count per caller, limit and window (the window's start ends its key).
        assert "user:alice" in window["_id"] and window["count"] == 1
        start = int(window["_id"].rsplit("/", 1)[1])
        # A window's count leaves the collection once the next window, which reads it, ended.
        assert window["expireAt"] == datetime.fromtimestamp(start + 120, UTC)
        assert window["expireAt"] > datetime.now(UTC)
        assert counters.index_information()["expireAt_1"]["expireAfterSeconds"] == 0

    def test_memory_when_asked_for(self, make_app: Any) -> None:
        app = make_app(BROKER_RATE_LIMIT_SIGN="5/minute", BROKER_RATE_LIMIT_STORAGE_URI="memory://")
        assert app.test_client().get("/images/abc/signed-url", headers=auth()).status_code == 404
        assert broker_of(app).db.database[RATE_LIMITS].count_documents({}) == 0

    @pytest.mark.parametrize(
        ("uri", "says"),
        [
            ("redis://localhost:6379", "redis"),  # the redis package is an extra
            ("memcached://localhost:11211", "must be empty or"),  # no moving window there
            ("mongo://typo", "must be empty or"),
        ],
    )
    def test_a_store_that_cannot_serve_stops_the_start(
        self, config: dict[str, Any], uri: str, says: str
    ) -> None:
        with pytest.raises(ConfigError, match="BROKER_RATE_LIMIT_STORAGE_URI") as refused:
            create_app({**config, "BROKER_RATE_LIMIT_STORAGE_URI": uri})
        assert says in str(refused.value)


def upload_all(client: Any, sub: str, count: int) -> list[dict[str, Any]]:
    """Presign and PUT ``count`` images (each of other bytes) without confirming them."""
    return [pending_upload(client, png_bytes(4 + i, 3), sub=sub) for i in range(count)]


class TestQuotas:
    # Uploads hold their image and bytes from presign on (the contract: pending bytes count
    # against the byte quota from presign), so the limits are met at presign, before any
    # byte travels; confirm keeps the reservation.
    def test_uploads_in_progress_count_from_presign(self, make_app: Any) -> None:
        app = make_app(BROKER_QUOTA_MAX_IMAGES="2")
        client = app.test_client()
        grants = upload_all(client, "alice", 2)
        refused = presign(client, b"x")
        assert refused.status_code == 413
        assert refused.json["error"]["code"] == "too_large"
        assert "2 images" in refused.json["error"]["message"]
        assert list(refused.json["error"]["details"]) == ["quota"]
        other = presign(client, b"x", sub="bob")
        assert other.status_code == 201
        quotas = broker_of(app).db.quotas
        assert quotas.usage("alice").images == 2
        # Confirming keeps what presign reserved: nothing counted twice, nothing refused.
        for grant in grants:
            confirmed = client.post("/images", json={"key": grant["key"]}, headers=auth())
            assert confirmed.status_code == 201, confirmed.json
        assert quotas.usage("alice").images == 2

    def test_an_upload_that_ends_unconfirmed_gives_its_quota_back(self, make_app: Any) -> None:
        data = png_bytes()
        app = make_app(BROKER_QUOTA_MAX_IMAGES="1")
        client = app.test_client()
        quotas = broker_of(app).db.quotas
        # rejected at confirm (the bytes are not the declared type)
        grant = pending_upload(client, data, filetype="image/jpeg")
        rejected = client.post("/images", json={"key": grant["key"]}, headers=auth())
        assert rejected.status_code == 422
        assert quotas.usage("alice") == Usage(0, 0)
        # never confirmed: the sweeper gives it back once the deadline passed
        (grant,) = upload_all(client, "alice", 1)
        assert quotas.usage("alice") == Usage(1, len(png_bytes(4, 3)))
        broker_of(app).db.uploads.collection.update_one(
            {"key": grant["key"]}, {"$set": {"confirm_by": datetime.now(UTC) - timedelta(1)}}
        )
        assert app.test_cli_runner().invoke(args=["sweep"]).exit_code == 0
        assert quotas.usage("alice") == Usage(0, 0)

    def test_byte_quota_and_release_on_delete(self, make_app: Any) -> None:
        data = png_bytes()
        app = make_app(BROKER_QUOTA_MAX_BYTES=str(len(data) * 2))
        client = app.test_client()
        grants = upload_all(client, "alice", 1)
        image = client.post("/images", json={"key": grants[0]["key"]}, headers=auth()).json["image"]
        assert presign(client, data, size=len(data) * 2).status_code == 413
        assert client.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
        assert broker_of(app).db.quotas.usage("alice").images == 0
        assert presign(client, data, size=len(data) * 2).status_code == 201

    def test_concurrent_presigns_cannot_overshoot(self, make_app: Any) -> None:
        app = make_app(BROKER_QUOTA_MAX_IMAGES="3")

        def presign_once(_: int) -> int:
            return int(presign(app.test_client()).status_code)

        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = sorted(pool.map(presign_once, range(6)))
        assert statuses == [201, 201, 201, 413, 413, 413]
        broker = broker_of(app)
        assert broker.db.uploads.collection.count_documents({"owner": "alice"}) == 3
        assert broker.db.quotas.usage("alice").images == 3

    def test_an_upload_presigned_before_presign_held_quota_is_counted_at_confirm(
        self, make_app: Any
    ) -> None:
        # Upload records written before the upgrade hold no reservation: confirm takes one,
        # atomically, and refuses (413, object deleted) what the quota cannot take.
        app = make_app(BROKER_QUOTA_MAX_IMAGES="3")
        grants = upload_all(app.test_client(), "alice", 3)
        broker = broker_of(app)
        broker.db.uploads.collection.update_many({}, {"$unset": {"quota_held": ""}})
        broker.db.quotas.collection.update_one({"_id": "alice"}, {"$set": {"images": 1}})

        def confirm(grant: dict[str, Any]) -> int:
            return int(
                app.test_client()
                .post("/images", json={"key": grant["key"]}, headers=auth())
                .status_code
            )

        with ThreadPoolExecutor(max_workers=3) as pool:
            statuses = sorted(pool.map(confirm, grants))
        assert statuses == [201, 201, 413]
        assert broker.db.images.collection.count_documents({"owner": "alice"}) == 2
        assert broker.db.quotas.usage("alice").images == 3
        refused = next(g for g in grants if not broker.db.images.is_live(g["key"]))
        assert broker.bucket.head(refused["key"]) is None

    def test_recount_rebuilds_usage(self, app: Flask, broker: Broker) -> None:
        grants = upload_all(app.test_client(), "alice", 2)
        for grant in grants:
            app.test_client().post("/images", json={"key": grant["key"]}, headers=auth())
        upload_all(app.test_client(), "alice", 1)  # in progress: it holds its share too
        quotas = broker.db.quotas
        before = quotas.usage("alice")
        assert before.images == 3
        quotas.collection.update_one({"_id": "alice"}, {"$set": {"images": 99, "bytes": 1}})
        result = app.test_cli_runner().invoke(args=["recount-quotas"])
        assert result.exit_code == 0, result.output
        assert quotas.usage("alice") == before


def test_a_broken_counter_store_does_not_refuse_everyone(
    make_app: Any, monkeypatch: Any, caplog: Any
) -> None:
    # While the shared counters are unreachable every process counts on its own (each caller
    # keeps a budget per process: nobody is refused for the store's sake), says so once in the
    # log, and leaves the store alone for a while rather than wait its timeout on each request.
    # (This test used to assert no limit at all while the store was down.)
    app = make_app(BROKER_RATE_LIMIT_PRESIGN="1/minute")
    client = app.test_client()
    store_calls = 0

    def down(*args: Any, **kwargs: Any) -> bool:
        nonlocal store_calls
        store_calls += 1
        raise ConnectionError("counter store unreachable")

    monkeypatch.setattr(broker_of(app).rate_limiter._store, "hit", down)
    with caplog.at_level("WARNING", logger="broker.ratelimiter"):
        statuses = [
            presign(client, sub=sub).status_code for sub in ("alice", "bob", "alice", "carol")
        ]
    assert statuses == [201, 201, 429, 201]
    assert store_calls == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "broker.ratelimiter"]
    assert len(warnings) == 1 and "counter store unreachable" in warnings[0]
