"""What the signing and listing routes ask of MongoDB: one query at most, none when cached."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from flask import Flask
from flask.testing import FlaskClient
from pymongo import MongoClient

from broker.devservers import MongoServer
from broker.domain import Principal
from broker.extension import Broker
from tests.support.commands import Commands
from tests.support.records import image_record
from tests.support.tokens import auth


@pytest.fixture
def commands(
    broker: Broker, mongo_server: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Commands]:
    """The images repository, watched: every command it sends to MongoDB."""
    listener = Commands()
    collection = broker.db.images.collection
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_server.uri, tz_aware=True, event_listeners=[listener]
    )
    watched = client[collection.database.name][collection.name]
    monkeypatch.setattr(broker.db.images, "collection", watched)
    yield listener
    client.close()


def seed(broker: Broker, owner: str, count: int) -> list[str]:
    """``count`` images of ``owner``, one second apart."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    images = [
        image_record(owner, created_at=start + timedelta(seconds=i), updated_at=start)
        for i in range(count)
    ]
    for image in images:
        broker.db.images.insert(image)
    return [image.id for image in images]


def test_a_signed_page_of_100_is_one_query_with_a_projection(
    app: Flask, client: FlaskClient, broker: Broker, commands: Commands
) -> None:
    seed(broker, "alice", 120)
    commands.sent.clear()
    page = client.get("/images?limit=100&sign=1", headers=auth()).json
    assert len(page["images"]) == 100 and all(image["url"] for image in page["images"])
    assert page["next_cursor"]
    # One find answered in its first batch: no getMore, no count, no second step.
    assert commands.names() == ["find"]
    find = commands.sent[0][1]
    assert find["limit"] == 101
    # Only what an image is: the record's other fields (the tombstone's time) stay behind.
    assert find["projection"].get("deleting_at") is None and find["projection"]["key"]


def test_a_batch_reads_its_uncached_ids_in_one_query_then_none(
    client: FlaskClient, broker: Broker, commands: Commands
) -> None:
    ids = seed(broker, "alice", 100)
    commands.sent.clear()
    first = client.post("/images/signed-urls", json={"ids": ids}, headers=auth()).json
    assert len(first["urls"]) == 100
    assert commands.names() == ["find"]
    commands.sent.clear()
    again = client.post("/images/signed-urls", json={"ids": ids}, headers=auth()).json
    assert again == first
    assert commands.names() == []  # the lookup cache answers, the memo gives the same URLs


def test_a_signed_url_asked_again_needs_no_query(
    client: FlaskClient, broker: Broker, commands: Commands
) -> None:
    (image_id,) = seed(broker, "alice", 1)
    commands.sent.clear()
    first = client.get(f"/images/{image_id}/signed-url", headers=auth()).json
    assert commands.names() == ["find"]
    commands.sent.clear()
    assert client.get(f"/images/{image_id}/signed-url", headers=auth()).json == first
    assert commands.names() == []


def test_look_ups_by_id_name_the_id_alone(
    client: FlaskClient, broker: Broker, commands: Commands
) -> None:
    # Who may see the image, and whether it is being deleted, is decided on the one document
    # the id names: beside the id, the visibility $or made the test server scan the collection.
    ids = seed(broker, "alice", 2)
    commands.sent.clear()
    assert client.get(f"/images/{ids[0]}/signed-url", headers=auth()).status_code == 200
    assert client.post("/images/signed-urls", json={"ids": ids}, headers=auth()).status_code == 200
    filters = [command["filter"] for name, command in commands.sent if name == "find"]
    assert filters == [{"_id": ObjectId(ids[0])}, {"_id": {"$in": [ObjectId(ids[1])]}}]
    # ... and still decided: another user sees neither, an image being deleted is nobody's.
    assert client.get(f"/images/{ids[1]}/signed-url", headers=auth("bob")).status_code == 404
    owner = Principal(sub="alice", is_admin=False, is_reader=False)
    tombstoned = broker.db.images.mark_deleting(ids[1], owner, datetime.now(UTC))
    assert tombstoned is not None
    broker.lookups.forget(tombstoned)
    assert client.get(f"/images/{ids[1]}/signed-url", headers=auth()).status_code == 404
    assert client.get(f"/images/{ids[1]}/signed-url", headers=auth(admin=True)).status_code == 404
