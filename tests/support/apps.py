"""Broker apps built for tests on the suite's services, and closed again afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from pymongo.database import Database
from pymongo.errors import PyMongoError

from broker import create_app
from broker.extension import Broker, current_broker


def broker_of(app: Flask) -> Broker:
    """The services of ``app`` (any app a test built), reached as its views reach them."""
    with app.app_context():
        return current_broker()


@dataclass(frozen=True)
class SharedDatabase:
    """The session's database: its indexes are built once, and tests leave it empty."""

    uri: str
    database: Database[dict[str, Any]]

    @property
    def name(self) -> str:
        """The database's name."""
        return self.database.name

    def empty(self) -> None:
        """Delete every document (the indexes stay)."""
        for collection in self.database.list_collection_names():
            self.database[collection].delete_many({})

    def serves(self, app: Flask) -> bool:
        """Whether ``app`` keeps its data in this database."""
        broker = broker_of(app)
        return broker.settings.mongodb_uri == self.uri and broker.db.database.name == self.name


class AppFactory:
    """Builds apps from base settings plus overrides; ``close()`` releases them all.

    An app on the shared database is told its indexes exist (they were built for the session)
    instead of building them again; an app on a database of its own builds them (unless
    ``prepare=False``) and that database is dropped on close.
    """

    def __init__(self, settings: Mapping[str, str], shared: SharedDatabase | None = None) -> None:
        self.settings = dict(settings)
        self.shared = shared
        self.apps: list[Flask] = []

    def __call__(self, prepare: bool = True, **overrides: Any) -> Flask:
        """An app with these overrides; ``prepare=False`` skips making the indexes and the
        bucket (for apps whose services are deliberately unreachable or must start pristine)."""
        return self.build(overrides, prepare)

    def build(self, overrides: Mapping[str, Any], prepare: bool = True) -> Flask:
        """An app with these overrides (see ``__call__``)."""
        app = create_app({**self.settings, **overrides})
        self.apps.append(app)
        broker = broker_of(app)
        if self.shared is not None and self.shared.serves(app):
            broker.db.indexes.mark_done()
        elif prepare:
            broker.db.ensure_indexes()
        if prepare:
            broker.bucket.ensure_bucket()
        return app

    def close(self) -> None:
        """Drop the databases of the apps' own and close every client."""
        for app in self.apps:
            db = broker_of(app).db
            if self.shared is None or not self.shared.serves(app):
                # An app whose database is unreachable on purpose has nothing to drop.
                with contextlib.suppress(PyMongoError):
                    db.client.drop_database(db.database.name)
            db.client.close()
