"""The ``quotas`` collection: each owner's image and byte usage, reserved atomically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

from broker.db.failures import reports_unavailable
from broker.domain import CONFIRMED


@dataclass(frozen=True)
class Usage:
    """How many images and bytes an owner has recorded."""

    images: int
    bytes: int


@reports_unavailable
class QuotaRepository:
    """Per-owner usage counters, reserved atomically so concurrent confirms cannot overshoot."""

    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self.collection = collection

    def usage(self, owner: str) -> Usage:
        """The owner's recorded usage."""
        doc = self.collection.find_one({"_id": owner}) or {}
        return Usage(int(doc.get("images", 0)), int(doc.get("bytes", 0)))

    def reserve(self, owner: str, size: int, max_images: int, max_bytes: int) -> bool:
        """Count one more image of ``size`` bytes if it fits the limits (0: none); else False."""
        self.collection.update_one(
            {"_id": owner}, {"$setOnInsert": {"images": 0, "bytes": 0}}, upsert=True
        )
        condition: dict[str, Any] = {"_id": owner}
        if max_images:
            condition["images"] = {"$lte": max_images - 1}
        if max_bytes:
            condition["bytes"] = {"$lte": max_bytes - size}
        # One conditional update: the check and the increment cannot be split by a racer.
        result = self.collection.update_one(condition, {"$inc": {"images": 1, "bytes": size}})
        return result.modified_count == 1

    def release(self, owner: str, size: int) -> None:
        """Give back one recorded image of ``size`` bytes (it was deleted)."""
        self.collection.update_one({"_id": owner}, {"$inc": {"images": -1, "bytes": -size}})

    def recount(
        self, images: Collection[dict[str, Any]], uploads: Collection[dict[str, Any]]
    ) -> int:
        """Rebuild every owner's usage from the images and the uploads still holding a
        reservation (not yet confirmed); return the owners counted."""
        group = {"$group": {"_id": "$owner", "images": {"$sum": 1}, "bytes": {"$sum": "$size"}}}
        usage: dict[str, Usage] = {}
        holding = {"quota_held": True, "state": {"$ne": CONFIRMED}}
        for collection, match in ((images, {}), (uploads, holding)):
            for total in collection.aggregate([{"$match": match}, group]):
                before = usage.get(total["_id"], Usage(0, 0))
                usage[total["_id"]] = Usage(
                    before.images + total["images"], before.bytes + total["bytes"]
                )
        for owner, counted in usage.items():
            self.collection.replace_one(
                {"_id": owner}, {"images": counted.images, "bytes": counted.bytes}, upsert=True
            )
        self.collection.delete_many({"_id": {"$nin": list(usage)}})
        return len(usage)
