"""The ``rate_limits`` collection: the rate limits' window counts, shared by every process and host.

One document per (limit, caller) and window, ``{_id: "<limit key>/<window start>", count,
expireAt}``, written by :class:`~broker.sliding_window.LeasedSlidingWindow` (which decides what
to count; this module only counts). Only ``$inc`` with an upsert and plain reads: no pipeline
update (``secantusdb`` refuses them), nothing a real MongoDB lacks.

- It uses the broker's own client and database (one connection pool per process, the same
  timeouts, so a down server costs a request seconds, not pymongo's default 30 s).
- It creates no index of its own on first use: ``broker/db/indexes.py`` declares the TTL index
  on ``expireAt`` with the others (created at start-up and by ``flask ensure-indexes``), so a
  window's count leaves the collection once the window after it, which reads it, has ended.
- Two *first* increments of a window race on MongoDB: both upserts may try to insert, and the
  loser's collides with the winner's new document (SERVER-14322) although nothing is wrong. By
  then the document exists, so the increment is tried once more and finds it. (secantusdb
  instead applies both and may answer the loser with no document: the count is then read.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

RATE_LIMITS = "rate_limits"
# The TTL index's name as the ``limits`` library would create it (the counters were once its
# documents), so an index it made earlier is the same index, never a conflicting second one.
EXPIRY_INDEX = "expireAt_1"


class SharedCounts:
    """Window counts in a MongoDB collection (see the module)."""

    def __init__(
        self,
        database: Database[dict[str, Any]],
        collection: str = RATE_LIMITS,
        *,
        own_client: bool = False,
    ) -> None:
        self.collection = database[collection]
        # Counts on a server of their own (own_client) have no start-up to create their index:
        # the first write does (idempotent: same name, same options).
        self._own_client = own_client
        self._index_wanted = own_client

    def add(self, key: str, amount: int, expire_at: float) -> int:
        """Add ``amount`` (negative: give back) to the key's count, creating it; the count after."""
        if self._index_wanted:
            self.collection.create_index("expireAt", expireAfterSeconds=0, name=EXPIRY_INDEX)
            self._index_wanted = False
        try:
            return self._add(key, amount, expire_at)
        except DuplicateKeyError:  # two first increments raced (see the module): once more
            return self._add(key, amount, expire_at)

    def _add(self, key: str, amount: int, expire_at: float) -> int:
        document = self.collection.find_one_and_update(
            {"_id": key},
            {
                "$inc": {"count": amount},
                "$setOnInsert": {"expireAt": datetime.fromtimestamp(expire_at, UTC)},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
            projection={"count": True},
        )
        if document is None:
            # secantusdb answers null to some of several concurrent upserts of one new
            # document although each increment applied (MongoDB always returns it). A read now
            # sees at least the count this increment made: a conservative "after".
            document = self.collection.find_one({"_id": key}, {"count": True})
            if document is None:
                raise LookupError(f"the rate-limit count {key!r} vanished after an upsert")
        return int(document["count"])

    def count(self, key: str) -> int:
        """The key's count, 0 when it has none."""
        document = self.collection.find_one({"_id": key}, {"count": True})
        return int(document["count"]) if document else 0

    def __del__(self) -> None:
        # The broker's client is closed with the broker, never by these counts.
        if self._own_client:
            self.collection.database.client.close()


def counts_at(uri: str, timeout_ms: int) -> SharedCounts:
    """Counts on another MongoDB (``BROKER_RATE_LIMIT_STORAGE_URI=mongodb://…``)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 3, 10_000),
        connect=False,
        appname="image-broker-rate-limits",
    )
    return SharedCounts(client.get_default_database(default="broker"), own_client=True)
