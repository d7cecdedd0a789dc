"""The ``variant_jobs`` collection: the queue of images whose variants are to be made.

One job per image (``_id`` is the image's id): a decode is most of a render's cost, so all of an
image's variants are one job. A worker claims a job with one atomic ``find_one_and_update``
that sets a lease and a fresh claim token, so any number of workers on any number of hosts
never hold one job at once; every later write is filtered on that token (a worker whose lease
was taken over can no longer touch the job). A job whose lease ran out (its worker died) is
claimed again like a due one. Works on any MongoDB: no transactions, single-document updates.

The collection ``variant_sweeps`` keeps where the sweeper's walk over the variant objects got
to, so each ``flask sweep`` looks at a bounded slice of the bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from broker.db.failures import reports_unavailable

QUEUED = "queued"
RUNNING = "running"
_ORPHAN_WALK = "orphans"


@dataclass(frozen=True)
class Job:
    """A claimed job: the image, the claim token that fences every write, the tries so far."""

    image_id: str
    claim: str
    attempts: int
    # The original's key, so the variants of an image deleted meanwhile can still be found.
    key: str | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class QueueStatus:
    """How much work there is: jobs waiting (due now or later), jobs being made, and since
    when the longest-waiting due job has been due (None when none is)."""

    queued: int
    running: int
    oldest_due_at: datetime | None = None


def _job(doc: Mapping[str, Any]) -> Job:
    return Job(
        image_id=str(doc["_id"]),
        claim=doc["claim"],
        attempts=int(doc.get("attempts") or 0),
        key=doc.get("key"),
        last_error=doc.get("last_error"),
    )


def _oid(image_id: str) -> ObjectId | None:
    try:
        return ObjectId(image_id)
    except (InvalidId, TypeError):
        return None


@reports_unavailable
class VariantJobRepository:
    """Enqueue, claim with a lease, heartbeat, release with a delay, finish."""

    def __init__(
        self, collection: Collection[dict[str, Any]], sweeps: Collection[dict[str, Any]]
    ) -> None:
        self.collection = collection
        self.sweeps = sweeps

    def enqueue(self, image_id: str, key: str, now: datetime) -> None:
        """Queue the image's job, due now, unless it is queued or running already."""
        self.enqueue_missing([(image_id, key)], now)

    def enqueue_missing(self, images: list[tuple[str, str]], now: datetime) -> int:
        """Queue a job for each (id, key) image that has none; return how many were queued."""
        keys = {oid: key for oid, key in ((_oid(i), k) for i, k in images) if oid is not None}
        if not keys:
            return 0
        found = self.collection.find({"_id": {"$in": list(keys)}}, {"_id": 1})
        existing = {doc["_id"] for doc in found}
        queued = 0
        for oid, key in keys.items():
            if oid in existing:
                continue
            try:
                result = self.collection.update_one(
                    {"_id": oid},
                    {
                        "$setOnInsert": {
                            "state": QUEUED,
                            "key": key,
                            "run_after": now,
                            "attempts": 0,
                            "created_at": now,
                        }
                    },
                    upsert=True,
                )
            except DuplicateKeyError:
                continue  # another worker's catch-up (or a confirm) queued it a moment ago
            queued += result.upserted_id is not None
        return queued

    def claim(self, now: datetime, lease_seconds: float, worker: str) -> Job | None:
        """Atomically take the job due first (or one whose lease ran out); None when none is."""
        lease = {
            "$set": {
                "state": RUNNING,
                "claim": uuid.uuid4().hex,
                "worker": worker,
                "lease_until": now + timedelta(seconds=lease_seconds),
                "claimed_at": now,
            },
            "$inc": {"attempts": 1},
        }
        # Two queries rather than one $or: each walks its own index in order on a real MongoDB.
        for query, order in (
            ({"state": QUEUED, "run_after": {"$lte": now}}, "run_after"),
            ({"state": RUNNING, "lease_until": {"$lt": now}}, "lease_until"),
        ):
            doc = self.collection.find_one_and_update(
                query, lease, sort=[(order, ASCENDING)], return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return _job(doc)
        return None

    def heartbeat(self, job: Job, now: datetime, lease_seconds: float) -> bool:
        """Extend the lease; False when the job is no longer this claim's (taken over, gone)."""
        result = self.collection.update_one(
            {"_id": ObjectId(job.image_id), "claim": job.claim},
            {"$set": {"lease_until": now + timedelta(seconds=lease_seconds)}},
        )
        return result.matched_count == 1

    def release(
        self, job: Job, run_after: datetime, error: str | None, *, counts: bool = True
    ) -> bool:
        """Put the job back in the queue, due at ``run_after``; ``counts=False`` gives back the
        try the claim counted (the image was not at fault: a backing service was down)."""
        update: dict[str, Any] = {
            "$set": {"state": QUEUED, "run_after": run_after, "last_error": error},
            "$unset": {"claim": "", "worker": "", "lease_until": ""},
        }
        if not counts:
            update["$inc"] = {"attempts": -1}
        result = self.collection.update_one(
            {"_id": ObjectId(job.image_id), "claim": job.claim}, update
        )
        return result.matched_count == 1

    def finish(self, job: Job) -> bool:
        """Remove the job once done; False when it was no longer this claim's."""
        result = self.collection.delete_one({"_id": ObjectId(job.image_id), "claim": job.claim})
        return result.deleted_count == 1

    def discard(self, image_id: str, now: datetime) -> None:
        """Drop an image's job unless a live worker holds it (its image is being deleted)."""
        oid = _oid(image_id)
        if oid is not None:
            self.collection.delete_one(
                {"_id": oid, "$or": [{"state": QUEUED}, {"lease_until": {"$lt": now}}]}
            )

    def status(self, now: datetime) -> QueueStatus:
        """Jobs queued and running right now, and the oldest due one (all on the state index)."""
        oldest = self.collection.find_one(
            {"state": QUEUED, "run_after": {"$lte": now}},
            projection={"run_after": True},
            sort=[("run_after", ASCENDING)],
        )
        return QueueStatus(
            queued=self.collection.count_documents({"state": QUEUED}),
            running=self.collection.count_documents({"state": RUNNING}),
            oldest_due_at=oldest["run_after"] if oldest else None,
        )

    def orphan_walk_position(self) -> str:
        """The variant key the sweeper's walk over the bucket stopped after ("" at the start)."""
        doc = self.sweeps.find_one({"_id": _ORPHAN_WALK})
        return str(doc["after"]) if doc else ""

    def set_orphan_walk_position(self, after: str) -> None:
        """Remember where the walk stopped (``""``: start again from the first key)."""
        self.sweeps.update_one({"_id": _ORPHAN_WALK}, {"$set": {"after": after}}, upsert=True)
