"""The ``rate_limits`` collection: the rate limits' counters, shared by every process and host.

The counting is the ``limits`` library's MongoDB moving window, kept as it is: one document per
(limit, caller) holding the times of the caller's latest hits (at most the limit's count), one
conditional ``$push`` per hit, the window's state by an aggregation. What this module changes:

- It uses the broker's own client and database (one connection pool per process, the same
  timeouts, so a down server costs a request seconds, not pymongo's default 30 s).
- It creates no index of its own on first use: ``broker/db/indexes.py`` declares the TTL index
  on ``expireAt`` with the others (created at start-up and by ``flask ensure-indexes``), so the
  counters of callers who went quiet leave the collection a window after their last hit.
- A hit that finds the caller's window full is told so by a duplicate key (the conditional
  update matches nothing and its upsert collides with the caller's document). Two *first* hits
  of a caller race the same way on MongoDB: the loser's upsert collides with the winner's new
  document (SERVER-14322) although the window has room. So a refused hit is tried once more:
  by then the document exists and a collision means full.
"""

from __future__ import annotations

from typing import Any

from limits.storage import MongoDBStorage
from pymongo import MongoClient
from pymongo.database import Database

RATE_LIMITS = "rate_limits"
# The TTL index's name as ``limits`` itself would create it, so an index it made earlier is the
# same index, never a conflicting second one.
EXPIRY_INDEX = "expireAt_1"


class SharedCounters(MongoDBStorage):
    """``limits``' MongoDB storage on the broker's database and client (see the module)."""

    def __init__(
        self,
        database: Database[dict[str, Any]],
        collection: str = RATE_LIMITS,
        *,
        own_client: bool = False,
    ) -> None:
        # The moving window keeps its documents in the "windows" collection; the fixed-window
        # "counters" one is never used by the broker, so both names point at one collection.
        super().__init__(
            "mongodb://",
            database_name=database.name,
            counter_collection_name=collection,
            window_collection_name=collection,
        )
        self._client: MongoClient[dict[str, Any]] = database.client
        self._collection = database[collection]
        self.collection_name = collection
        # Counters on a server of their own (own_client) have no start-up to create their
        # index: the first hit does (idempotent: same name, same options).
        self._own_client = own_client
        self._index_wanted = own_client

    @property
    def storage(self) -> MongoClient[dict[str, Any]]:
        """The broker's client (``limits`` would open its own and create its indexes)."""
        if self._index_wanted:
            self._collection.create_index("expireAt", expireAfterSeconds=0, name=EXPIRY_INDEX)
            self._index_wanted = False
        return self._client

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take ``amount`` entries in the window; a refusal is checked once more (see above)."""
        return super().acquire_entry(key, limit, expiry, amount) or super().acquire_entry(
            key, limit, expiry, amount
        )

    def __del__(self) -> None:
        # The broker's client is closed with the broker, never by this storage.
        if self._own_client:
            self._client.close()


def counters_at(uri: str, timeout_ms: int) -> SharedCounters:
    """Counters on another MongoDB (``BROKER_RATE_LIMIT_STORAGE_URI=mongodb://…``)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 3, 10_000),
        connect=False,
        appname="image-broker-rate-limits",
    )
    return SharedCounters(client.get_default_database(default="broker"), own_client=True)
