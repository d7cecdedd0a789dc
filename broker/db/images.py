"""The ``images`` collection: confirmed images, read with visibility, listed by keyset pages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from broker.db.failures import reports_unavailable
from broker.domain import Image, Principal
from broker.pagination import ID_FIELD, SORTS, decode_cursor, encode_cursor, keyset_steps


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor of the next (None at the end)."""

    images: list[Image]
    next_cursor: str | None


def _image_from_doc(doc: Mapping[str, Any]) -> Image:
    return Image(
        id=str(doc["_id"]),
        key=doc["key"],
        owner=doc["owner"],
        filename=doc["filename"],
        content_type=doc["content_type"],
        size=doc["size"],
        width=doc.get("width"),
        height=doc.get("height"),
        content_md5=doc.get("content_md5"),
        etag=doc.get("etag"),
        kind=doc["kind"],
        is_primary=bool(doc.get("is_primary")),
        caption=doc.get("caption"),
        tags=list(doc.get("tags") or []),
        usage_count=int(doc.get("usage_count") or 0),
        last_used_at=doc.get("last_used_at"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def image_document(image: Image) -> dict[str, Any]:
    """The MongoDB document that records an image."""
    doc = asdict(image)
    doc["_id"] = ObjectId(doc.pop("id"))
    return doc


def _object_id(image_id: str) -> ObjectId | None:
    try:
        return ObjectId(image_id)
    except (InvalidId, TypeError):
        return None


def _visible_to(principal: Principal) -> dict[str, Any]:
    # Tombstoned images (a delete in progress) are hidden from everyone.
    query: dict[str, Any] = {"deleting_at": None}
    if not principal.is_admin:
        query["owner"] = principal.sub
    return query


@reports_unavailable
class ImageRepository:
    """Reads and writes confirmed images."""

    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self.collection = collection

    def new_id(self) -> str:
        """A fresh id for an image about to be inserted (the ObjectId the record will carry)."""
        return str(ObjectId())

    def insert(self, image: Image) -> tuple[Image, bool]:
        """Record an image; if its key is already recorded return that one and False."""
        try:
            self.collection.insert_one(image_document(image))
        except DuplicateKeyError:
            existing = self.collection.find_one({"key": image.key})
            if existing is None:  # deleted between our insert and this read
                raise
            return _image_from_doc(existing), False
        return image, True

    def get(self, image_id: str, principal: Principal) -> Image | None:
        """The image if the caller may see it."""
        oid = _object_id(image_id)
        if oid is None:
            return None
        doc = self.collection.find_one({"_id": oid, **_visible_to(principal)})
        return _image_from_doc(doc) if doc else None

    def get_by_key(self, key: str, principal: Principal) -> Image | None:
        """The image stored under ``key`` if the caller may see it."""
        doc = self.collection.find_one({"key": key, **_visible_to(principal)})
        return _image_from_doc(doc) if doc else None

    def is_live(self, key: str) -> bool:
        """Whether an image that is not being deleted is recorded under ``key``."""
        return self.collection.count_documents({"key": key, "deleting_at": None}, limit=1) == 1

    def get_many(self, image_ids: list[str], principal: Principal) -> list[Image]:
        """The images among ``image_ids`` the caller may see (unknown ids are skipped)."""
        oids = [oid for oid in map(_object_id, image_ids) if oid is not None]
        if not oids:
            return []
        docs = self.collection.find({"_id": {"$in": oids}, **_visible_to(principal)})
        return [_image_from_doc(doc) for doc in docs]

    def page(
        self,
        principal: Principal,
        *,
        owner: str | None,
        kind: str | None,
        q: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """One page of images in sort order, continuing after ``cursor``."""
        query = _visible_to(principal)
        if owner is not None:
            query["owner"] = owner
        if kind is not None:
            query["kind"] = kind
        if q:
            pattern = {"$regex": re.escape(q), "$options": "i"}
            query["$or"] = [{"filename": pattern}, {"caption": pattern}]
        after = None
        if cursor:
            # The cursor holds the id as hex; the collection compares ObjectIds.
            fields = [field for field, _ in SORTS[sort]]
            after = [
                ObjectId(value) if field == ID_FIELD else value
                for field, value in zip(fields, decode_cursor(sort, cursor), strict=True)
            ]
        docs: list[dict[str, Any]] = []
        for step in keyset_steps(sort, after):
            wanted = limit + 1 - len(docs)
            if wanted <= 0:
                break
            found = self.collection.find({**query, **step}).sort(SORTS[sort]).limit(wanted)
            docs.extend(found)
        next_cursor = encode_cursor(sort, docs[limit - 1]) if len(docs) > limit else None
        return Page([_image_from_doc(doc) for doc in docs[:limit]], next_cursor)

    def update(self, image: Image, changes: Mapping[str, Any]) -> Image | None:
        """Apply field changes to a visible image; None if it vanished meanwhile."""
        doc = self.collection.find_one_and_update(
            {"_id": ObjectId(image.id), "deleting_at": None},
            {"$set": dict(changes)},
            return_document=ReturnDocument.AFTER,
        )
        return _image_from_doc(doc) if doc else None

    def make_primary(self, image: Image, now: datetime) -> Image | None:
        """Mark the image primary for its (owner, kind), un-marking the previous one.

        The partial unique index forbids two primaries; if a concurrent request wins the slot
        between our two updates, we retry, so the last request wins and one primary remains.
        """
        for _ in range(5):
            self.collection.update_many(
                {
                    "owner": image.owner,
                    "kind": image.kind,
                    "is_primary": True,
                    "_id": {"$ne": ObjectId(image.id)},
                },
                {"$set": {"is_primary": False, "updated_at": now}},
            )
            try:
                return self.update(image, {"is_primary": True, "updated_at": now})
            except DuplicateKeyError:
                continue
        raise DuplicateKeyError("could not make the image primary under contention")

    def record_usage(self, image: Image, now: datetime) -> Image | None:
        """Count one use of the image, atomically."""
        doc = self.collection.find_one_and_update(
            {"_id": ObjectId(image.id), "deleting_at": None},
            {"$inc": {"usage_count": 1}, "$set": {"last_used_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return _image_from_doc(doc) if doc else None

    def mark_deleting(self, image_id: str, principal: Principal, now: datetime) -> Image | None:
        """Tombstone an image (hidden at once), returning it; also finds an earlier tombstone."""
        oid = _object_id(image_id)
        if oid is None:
            return None
        query: dict[str, Any] = {"_id": oid}
        if not principal.is_admin:
            query["owner"] = principal.sub
        doc = self.collection.find_one_and_update(
            query,
            [{"$set": {"deleting_at": {"$ifNull": ["$deleting_at", now]}, "is_primary": False}}],
            return_document=ReturnDocument.AFTER,
        )
        return _image_from_doc(doc) if doc else None

    def remove(self, image_id: str) -> Image | None:
        """Remove the record for good; return it, or None if someone else removed it first."""
        doc = self.collection.find_one_and_delete({"_id": ObjectId(image_id)})
        return _image_from_doc(doc) if doc else None

    def remove_by_key(self, key: str) -> Image | None:
        """Remove whatever record points at ``key``; return it if there was one."""
        doc = self.collection.find_one_and_delete({"key": key})
        return _image_from_doc(doc) if doc else None

    def tombstones(self, older_than: datetime, limit: int) -> list[Image]:
        """Images whose delete started before ``older_than`` and never finished."""
        docs = self.collection.find({"deleting_at": {"$lt": older_than}}).limit(limit)
        return [_image_from_doc(doc) for doc in docs]
