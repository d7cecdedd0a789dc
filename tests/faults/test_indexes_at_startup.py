"""The broker creates its MongoDB indexes itself at start-up, and MongoDB down then stops
nothing: the first request after it comes back creates them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from broker.db.indexes import missing_indexes
from broker.devservers import MongoServer
from tests.support.apps import broker_of
from tests.support.faults import FAST_FAIL, recovers, timed
from tests.support.tokens import auth


@pytest.fixture(autouse=True)
def broker_logging_restored() -> Iterator[None]:
    # Outside test mode the app sends the broker's logs to stderr and stops their propagation:
    # put the logger back as it was, so later tests still capture its records.
    logger = logging.getLogger("broker")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate, logger.level = propagate, level


def index_names(app: Flask) -> set[str]:
    """Every index of every collection in the app's database (features add collections)."""
    database = broker_of(app).db.database
    return {
        name for c in database.list_collection_names() for name in database[c].index_information()
    }


@pytest.mark.parametrize("mode", ["production", "demo"])
def test_an_app_has_its_indexes_before_its_first_request(
    make_app: Callable[..., Flask], own_database: str, mode: str
) -> None:
    app = make_app(prepare=False, BROKER_ENV=mode, BROKER_MONGODB_DB=own_database)
    made = index_names(app)
    assert broker_of(app).db.indexes.done
    assert set(broker_of(app).db.ensure_indexes()) <= made
    assert {"key_unique", "one_primary_per_owner_kind", "purge_at_ttl"} <= made


def test_a_later_start_makes_what_went_missing(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    first = make_app(prepare=False, BROKER_ENV="production", BROKER_MONGODB_DB=own_database)
    database = broker_of(first).db.database
    database["images"].drop_index("list_owner_kind_most_used")
    second = make_app(prepare=False, BROKER_ENV="production", BROKER_MONGODB_DB=database.name)
    assert "list_owner_kind_most_used" in index_names(second)


def test_a_test_app_leaves_the_indexes_to_the_tests_set_up(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    app = make_app(prepare=False, BROKER_MONGODB_DB=own_database)
    assert not broker_of(app).db.indexes.done
    assert index_names(app) == set()


def test_mongodb_down_at_start_up_stops_nothing(
    make_app: Callable[..., Flask], own_mongo: MongoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_mongo.stop()
    app = timed(
        lambda: make_app(
            prepare=False, BROKER_ENV="production", MONGODB_URI=own_mongo.uri, **FAST_FAIL
        )
    )
    # Outside test mode the broker logs JSON lines to stderr.
    assert "indexes not created at start-up" in capsys.readouterr().err
    assert not broker_of(app).db.indexes.done
    broker_of(app).bucket.ensure_bucket()
    client = app.test_client()
    down: Any = timed(lambda: client.get("/images", headers=auth()))
    assert down.status_code == 503 and down.json["error"]["code"] == "unavailable"
    own_mongo.start()
    assert recovers(lambda: client.get("/images", headers=auth())).status_code == 200
    assert {"key_unique", "one_primary_per_owner_kind", "purge_at_ttl"} <= index_names(app)


def test_an_index_named_alike_but_made_otherwise_is_not_in_place(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    database = broker_of(make_app(prepare=False, BROKER_MONGODB_DB=own_database)).db.database
    database["images"].create_index([("key", 1)], name="key_unique")  # not unique

    def missing() -> set[tuple[str, str]]:
        return {
            (collection, options["name"]) for collection, _, options in missing_indexes(database)
        }

    assert {("images", "key_unique"), ("uploads", "key_unique")} <= missing()
    # Serving goes on: the conflict is logged, and flask ensure-indexes shows it to fix.
    indexes = broker_of(make_app(prepare=False, BROKER_MONGODB_DB=own_database)).db.indexes
    indexes.ensure()
    assert indexes.done and ("images", "key_unique") in missing()
