"""MongoDB down before or during a request: 503 with ``Retry-After`` within seconds, nothing
half-written, and the same app object recovers when the server comes back (same port and data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from broker import domain
from broker.devservers import MongoServer
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope, assert_unavailable
from tests.support.faults import FAST_FAIL, recovers, timed
from tests.support.tokens import auth
from tests.support.upload import Flow


@pytest.fixture
def flow(make_app: Callable[..., Flask], own_mongo: MongoServer) -> Flow:
    """The upload flow on an app whose MongoDB server the test stops and starts."""
    return Flow(make_app(MONGODB_URI=own_mongo.uri, **FAST_FAIL))


def counts(flow: Flow) -> tuple[int, int]:
    db = broker_of(flow.app).db
    return db.images.collection.count_documents({}), db.uploads.collection.count_documents({})


def test_every_call_is_503_while_down_and_the_same_app_recovers(
    flow: Flow, own_mongo: MongoServer
) -> None:
    client = flow.client
    kept = flow.upload(caption="kept").image
    # A signed URL warms the in-process lookup cache for this image.
    assert client.get(f"/images/{kept['id']}/signed-url", headers=auth()).status_code == 200
    cold = flow.upload(caption="cold").image
    pending = flow.pending()
    before = counts(flow)

    own_mongo.stop()
    calls = {
        "presign": lambda: flow.presign(),
        "confirm": lambda: client.post("/images", json={"key": pending["key"]}, headers=auth()),
        "get": lambda: client.get(f"/images/{kept['id']}", headers=auth()),
        "list": lambda: client.get("/images", headers=auth()),
        "patch": lambda: client.patch(
            f"/images/{kept['id']}", json={"caption": "x"}, headers=auth()
        ),
        "primary": lambda: client.patch(
            f"/images/{kept['id']}", json={"is_primary": True}, headers=auth()
        ),
        "usage": lambda: client.post(f"/images/{kept['id']}/usage", headers=auth()),
        "delete": lambda: client.delete(f"/images/{kept['id']}", headers=auth()),
        "sign uncached": lambda: client.get(f"/images/{cold['id']}/signed-url", headers=auth()),
        "sign by key": lambda: client.get(f"/images/signed-url?key={kept['key']}", headers=auth()),
        "sign batch": lambda: client.post(
            "/images/signed-urls", json={"ids": [cold["id"]]}, headers=auth()
        ),
        "content": lambda: client.get(f"/images/{cold['id']}/content", headers=auth()),
    }
    for name, call in calls.items():
        response = timed(call)
        assert response.status_code == 503, (name, response.status_code, response.get_data()[:200])
        assert_unavailable(response)
    ready = timed(lambda: client.get("/readyz"))
    assert_unavailable(ready)
    assert ready.json["error"]["details"]["checks"]["mongodb"] == "unavailable"
    assert client.get("/healthz").status_code == 200
    # Signing a cached image needs no database (by design: the signing hot path skips it).
    assert client.get(f"/images/{kept['id']}/signed-url", headers=auth()).status_code == 200

    own_mongo.start()  # same port, same data directory
    assert recovers(lambda: client.get("/readyz")).status_code == 200
    assert counts(flow) == before  # nothing was written while down, nothing was lost
    again = client.get(f"/images/{kept['id']}", headers=auth())
    assert again.status_code == 200
    assert {k: again.json["image"][k] for k in ("key", "caption", "size")} == {
        k: kept[k] for k in ("key", "caption", "size")
    }
    confirmed = client.post("/images", json={"key": pending["key"]}, headers=auth())
    assert confirmed.status_code == 201, confirmed.json
    assert client.delete(f"/images/{kept['id']}", headers=auth()).status_code == 204
    assert flow.upload().image["key"]


def test_the_app_recovers_after_the_server_was_killed(flow: Flow, own_mongo: MongoServer) -> None:
    flow.upload()
    own_mongo.kill()
    assert_unavailable(timed(lambda: flow.client.get("/images", headers=auth())))
    assert_unavailable(timed(lambda: flow.client.get("/readyz")))
    own_mongo.start()
    assert recovers(lambda: flow.client.get("/readyz")).status_code == 200
    assert flow.client.get("/images", headers=auth()).status_code == 200
    assert flow.upload().image["key"]


def test_presign_failing_midway_records_nothing_and_returns_no_url(
    flow: Flow, own_mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = broker_of(flow.app).bucket
    signed: list[str] = []
    original = bucket.presign_put

    def sign_then_lose_the_database(key: str, **kwargs: Any) -> Any:
        result = original(key, **kwargs)
        signed.append(key)
        own_mongo.stop()
        return result

    monkeypatch.setattr(bucket, "presign_put", sign_then_lose_the_database)
    before = counts(flow)
    response = timed(lambda: flow.presign())
    assert_unavailable(response)
    assert signed and signed[0] not in response.get_data(as_text=True)
    assert "X-Amz-Signature" not in response.get_data(as_text=True)

    monkeypatch.setattr(bucket, "presign_put", original)
    own_mongo.start()
    assert counts(flow) == before
    assert broker_of(flow.app).db.uploads.collection.find_one({"key": signed[0]}) is None


def test_confirm_failing_midway_records_nothing_and_can_be_retried(
    flow: Flow, own_mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = flow.client
    key = flow.pending()["key"]
    bucket = broker_of(flow.app).bucket
    original = bucket.read_head

    def lose_the_database_then_read(object_key: str, length: int) -> Any:
        own_mongo.stop()  # the upload was read; recording the image will fail
        return original(object_key, length)

    monkeypatch.setattr(bucket, "read_head", lose_the_database_then_read)
    response = timed(lambda: client.post("/images", json={"key": key}, headers=auth()))
    assert_unavailable(response)

    monkeypatch.setattr(bucket, "read_head", original)
    own_mongo.start()
    db = broker_of(flow.app).db
    assert db.images.collection.count_documents({"key": key}) == 0
    assert db.uploads.collection.find_one({"key": key})["state"] == domain.PENDING
    assert bucket.head(key) is not None  # left for the retry (or the sweeper)
    retried = client.post("/images", json={"key": key}, headers=auth())
    assert retried.status_code == 201, retried.json
    assert db.images.collection.count_documents({"key": key}) == 1
    assert db.quotas.usage("alice").images == 1


def test_delete_failing_midway_is_finished_later(
    flow: Flow, own_mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = flow.upload().image
    bucket = broker_of(flow.app).bucket
    original = bucket.delete

    def delete_then_lose_the_database(key: str) -> None:
        original(key)
        own_mongo.stop()

    monkeypatch.setattr(bucket, "delete", delete_then_lose_the_database)
    assert_unavailable(timed(lambda: flow.client.delete(f"/images/{image['id']}", headers=auth())))
    monkeypatch.setattr(bucket, "delete", original)
    own_mongo.start()
    # The object is gone and the record is a hidden tombstone; a retry finishes the job.
    assert_envelope(flow.client.get(f"/images/{image['id']}", headers=auth()), 404, "not_found")
    assert flow.client.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
    assert counts(flow)[0] == 0


def test_an_app_started_while_mongodb_is_down_makes_its_indexes_when_it_comes_back(
    make_app: Callable[..., Flask], own_mongo: MongoServer
) -> None:
    # Nobody runs `flask ensure-indexes`: the app starts anyway, answers 503 while the server
    # is away, and its first request after makes every index (then the request itself).
    own_mongo.stop()
    app = make_app(prepare=False, MONGODB_URI=own_mongo.uri, **FAST_FAIL)
    broker_of(app).bucket.ensure_bucket()
    client = app.test_client()
    assert_unavailable(timed(lambda: client.get("/images", headers=auth())))
    own_mongo.start()
    assert client.get("/images", headers=auth()).status_code == 200
    database = broker_of(app).db.database
    assert "key_unique" in database["images"].index_information()
    assert "purge_at_ttl" in database["uploads"].index_information()


def test_many_processes_making_the_indexes_at_once_agree(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    # Every gunicorn worker of every instance makes the indexes as it starts serving: here
    # six at once on a database that has none yet.
    from concurrent.futures import ThreadPoolExecutor

    apps = [make_app(prepare=False, BROKER_MONGODB_DB=own_database) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        names = list(pool.map(lambda app: broker_of(app).db.ensure_indexes(), apps))
    assert all(found == names[0] for found in names) and "key_unique" in names[0]
