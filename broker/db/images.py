"""The ``images`` collection: confirmed images, read with visibility, listed by keyset pages."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from broker.db.failures import reports_unavailable
from broker.db.indexes import list_index_keys
from broker.domain import PRIVATE, PUBLIC, Image, Principal, may_see
from broker.pagination import ID_FIELD, SORTS, decode_cursor, encode_cursor, keyset_steps
from broker.variants.records import Variant, shown_variants

# The field holding the fingerprint of the settings an image's variants were completed for
# (broker.variants.records.fingerprint); absent until the worker has been through it.
VARIANTS_FINGERPRINT = "variants_fp"

log = logging.getLogger(__name__)

# MongoDB's error code for a hint that names no existing index.
_BAD_VALUE = 2


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor of the next (None at the end)."""

    images: list[Image]
    next_cursor: str | None


def _variant_from_doc(doc: Mapping[str, Any]) -> Variant:
    error = doc.get("error") or {}
    return Variant(
        state=doc["state"],
        key=doc.get("key"),
        content_type=doc.get("content_type"),
        width=doc.get("width"),
        height=doc.get("height"),
        size=doc.get("size"),
        digest=doc.get("digest"),
        error_code=error.get("code"),
        error_message=error.get("message"),
    )


def variant_document(variant: Variant) -> dict[str, Any]:
    """How one variant is recorded: only the fields it has."""
    doc: dict[str, Any] = {"state": variant.state}
    for name in ("key", "content_type", "width", "height", "size", "digest"):
        value = getattr(variant, name)
        if value is not None:
            doc[name] = value
    if variant.error_code is not None:
        doc["error"] = {"code": variant.error_code, "message": variant.error_message or ""}
    return doc


def _image_from_doc(doc: Mapping[str, Any], variant_names: tuple[str, ...] | None) -> Image:
    stored = {name: _variant_from_doc(v) for name, v in (doc.get("variants") or {}).items()}
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
        # Records from before sharing existed are private.
        visibility=doc.get("visibility") or PRIVATE,
        public_token=doc.get("public_token"),
        # As the API shows it (every configured name), or as stored for the worker (None).
        variants=stored if variant_names is None else shown_variants(stored, variant_names),
    )


# What a listing reads of each record: the fields an image has (its answer, and what signing
# it needs), not what else a record may carry (the tombstone's time, say). _id comes anyway.
_IMAGE_FIELDS = {field.name: True for field in dataclass_fields(Image) if field.name != "id"}


def image_document(image: Image) -> dict[str, Any]:
    """The MongoDB document that records an image."""
    doc = asdict(image)
    doc["_id"] = ObjectId(doc.pop("id"))
    # Only public images carry a token: the unique index on it is sparse, so the field must be
    # absent (not null) on every other.
    if doc["public_token"] is None:
        del doc["public_token"]
    doc["variants"] = {name: variant_document(v) for name, v in image.variants.items()}
    return doc


def _object_id(image_id: str) -> ObjectId | None:
    try:
        return ObjectId(image_id)
    except (InvalidId, TypeError):
        return None


def _seen_by(principal: Principal, doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` is a live image the caller may see (domain.may_see; an image recorded
    before sharing has no visibility: private; a tombstoned one, being deleted, is hidden).

    Checked here, on the one document the id or key names, rather than in the query: with the
    visibility ``$or`` or the tombstone beside the id the test server's planner scans the whole
    collection or a wide index per look-up (40-90 ms instead of 1-2 ms with 2,000 images, and a
    hint makes it walk the whole _id index), while MongoDB reads the same one document either
    way."""
    return doc.get("deleting_at") is None and may_see(
        principal, doc["owner"], doc.get("visibility") or PRIVATE
    )


def _literal(value: Any) -> dict[str, Any]:
    # In an update pipeline a string starting with "$" names a field: a caption of "$owner"
    # would copy the owner. Every value from outside goes in as a literal.
    return {"$literal": value}


@reports_unavailable
class ImageRepository:
    """Reads and writes confirmed images."""

    def __init__(
        self, collection: Collection[dict[str, Any]], variant_names: tuple[str, ...] = ()
    ) -> None:
        self.collection = collection
        # Images read for the API show these variants (the configured ones), and only these.
        self.variant_names = variant_names

    def _image(self, doc: Mapping[str, Any]) -> Image:
        return _image_from_doc(doc, self.variant_names)

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
            return self._image(existing), False
        return image, True

    def get(self, image_id: str, principal: Principal) -> Image | None:
        """The image if the caller may see it."""
        oid = _object_id(image_id)
        if oid is None:
            return None
        doc = self.collection.find_one({"_id": oid})
        return self._image(doc) if doc is not None and _seen_by(principal, doc) else None

    def get_by_key(self, key: str, principal: Principal) -> Image | None:
        """The image stored under ``key`` if the caller may see it."""
        doc = self.collection.find_one({"key": key})
        return self._image(doc) if doc is not None and _seen_by(principal, doc) else None

    def is_live(self, key: str) -> bool:
        """Whether an image that is not being deleted is recorded under ``key``."""
        return self.collection.count_documents({"key": key, "deleting_at": None}, limit=1) == 1

    def get_public(self, token: str) -> Image | None:
        """The public image whose link holds ``token`` (none once it turned private or went)."""
        doc = self.collection.find_one(
            {"public_token": token, "visibility": PUBLIC, "deleting_at": None}
        )
        return self._image(doc) if doc else None

    def is_recorded(self, key: str) -> bool:
        """Whether an image is recorded under ``key``, live or being deleted."""
        return self.collection.count_documents({"key": key}, limit=1) == 1

    def get_many(self, image_ids: list[str], principal: Principal) -> list[Image]:
        """The images among ``image_ids`` the caller may see (unknown ids are skipped)."""
        oids = [oid for oid in map(_object_id, image_ids) if oid is not None]
        if not oids:
            return []
        docs = self.collection.find({"_id": {"$in": oids}})
        return [self._image(doc) for doc in docs if _seen_by(principal, doc)]

    def page(
        self,
        *,
        owner: str | None,
        visibility: str | None,
        kind: str | None,
        q: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """One page of the images of ``owner`` (None: everyone's) with ``visibility`` (None: any)
        in sort order, continuing after ``cursor``. Who may list what is the caller's to decide
        (``domain.listing_scope``)."""
        query: dict[str, Any] = {"deleting_at": None}
        if owner is not None:
            query["owner"] = owner
        if visibility is not None:
            query["visibility"] = visibility
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
        scope = tuple(
            name for name, value in (("owner", owner), ("visibility", visibility)) if value
        )
        index = list_index_keys(sort, scope, by_kind=kind is not None)
        docs: list[dict[str, Any]] = []
        # Page 1 is one step: one indexed query, answered in one round trip (a first batch
        # holds up to ``limit`` documents). A later page may take a step or two more.
        for step in keyset_steps(sort, after):
            wanted = limit + 1 - len(docs)
            if wanted <= 0:
                break
            docs.extend(self._walk({**query, **step}, sort, index, wanted))
        next_cursor = encode_cursor(sort, docs[limit - 1]) if len(docs) > limit else None
        return Page([self._image(doc) for doc in docs[:limit]], next_cursor)

    def _walk(
        self, query: dict[str, Any], sort: str, index: list[tuple[str, int]], limit: int
    ) -> list[dict[str, Any]]:
        # The list index of this shape, named: a planner left to choose may scan the collection
        # (the test server does, for the tombstone filter) or a wider index (the owner's, then
        # filter out their private images). Should that index be missing (its creation failed
        # and was logged), the same query without the hint still answers.
        found = self.collection.find(query, _IMAGE_FIELDS).sort(SORTS[sort]).limit(limit)
        try:
            return list(found.hint(index))
        except OperationFailure as e:
            if e.code != _BAD_VALUE:
                raise
            log.warning("list index %s missing (run flask ensure-indexes): %s", index, e)
            return list(self.collection.find(query, _IMAGE_FIELDS).sort(SORTS[sort]).limit(limit))

    def update(self, image: Image, changes: Mapping[str, Any]) -> Image | None:
        """Apply field changes to a visible image; None if it vanished meanwhile.

        A change of ``visibility`` moves the link token in the same write: turning public keeps
        the token the image holds (two concurrent requests agree on one link), else takes
        ``changes["public_token"]``; turning private drops the token for good.
        """
        fields = {name: _literal(value) for name, value in changes.items()}
        stages: list[dict[str, Any]] = []
        if changes.get("visibility") == PUBLIC:
            fields["public_token"] = {"$ifNull": ["$public_token", fields["public_token"]]}
        stages.append({"$set": fields})
        if changes.get("visibility") == PRIVATE:
            stages.append({"$unset": ["public_token"]})
        doc = self.collection.find_one_and_update(
            {"_id": ObjectId(image.id), "deleting_at": None},
            stages,
            return_document=ReturnDocument.AFTER,
        )
        return self._image(doc) if doc else None

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
        return self._image(doc) if doc else None

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
        # As stored: the delete removes every variant the record names, configured or not.
        return _image_from_doc(doc, None) if doc else None

    def remove(self, image_id: str) -> Image | None:
        """Remove the record for good; return it, or None if someone else removed it first."""
        doc = self.collection.find_one_and_delete({"_id": ObjectId(image_id)})
        return self._image(doc) if doc else None

    def remove_by_key(self, key: str) -> Image | None:
        """Remove whatever record points at ``key``; return it if there was one."""
        doc = self.collection.find_one_and_delete({"key": key})
        return self._image(doc) if doc else None

    def tombstones(self, older_than: datetime, limit: int) -> list[Image]:
        """Images whose delete started before ``older_than`` and never finished."""
        docs = self.collection.find({"deleting_at": {"$lt": older_than}}).limit(limit)
        return [_image_from_doc(doc, None) for doc in docs]

    def take_over_delete(self, image_id: str, older_than: datetime, now: datetime) -> bool:
        """Atomically take an unfinished delete (so one sweeper finishes it); False if another
        did, or it finished. A sweeper that dies leaves it to be taken over again later."""
        result = self.collection.update_one(
            {"_id": ObjectId(image_id), "deleting_at": {"$lt": older_than}},
            {"$set": {"deleting_at": now}},
        )
        return result.modified_count == 1

    def give_back_delete(self, image_id: str, taken_at: datetime, due: datetime) -> None:
        """Hand back a delete taken at ``taken_at`` that failed, due again from ``due``."""
        self.collection.update_one(
            {"_id": ObjectId(image_id), "deleting_at": taken_at}, {"$set": {"deleting_at": due}}
        )

    # ---- variants (the worker's side) ----------------------------------------------------------

    def for_variants(self, image_id: str) -> Image | None:
        """The image with its variants as stored, or None when it is gone or being deleted."""
        oid = _object_id(image_id)
        if oid is None:
            return None
        doc = self.collection.find_one({"_id": oid, "deleting_at": None})
        return _image_from_doc(doc, None) if doc else None

    def record_variants(
        self,
        image: Image,
        made: Mapping[str, Variant],
        dropped: list[str],
        fingerprint: str,
    ) -> bool:
        """Record made (or failed) variants and forget dropped names, in one conditional update.

        False when the image is gone, being deleted, or no longer the object that was read
        (its key and ETag are part of the filter): then nothing is written.
        """
        changes: dict[str, Any] = {
            f"variants.{name}": variant_document(v) for name, v in made.items()
        }
        changes[VARIANTS_FINGERPRINT] = fingerprint
        update: dict[str, Any] = {"$set": changes}
        if dropped:
            update["$unset"] = {f"variants.{name}": "" for name in dropped}
        result = self.collection.update_one(
            {"_id": ObjectId(image.id), "key": image.key, "etag": image.etag, "deleting_at": None},
            update,
        )
        return result.matched_count == 1

    def outdated(self, fingerprint: str, after: str | None, limit: int) -> list[tuple[str, str]]:
        """(id, key) of live images, in id order after ``after``, whose variants were not
        completed for ``fingerprint``: new ones, and all of them once the settings change."""
        query: dict[str, Any] = {VARIANTS_FINGERPRINT: {"$ne": fingerprint}, "deleting_at": None}
        if after is not None:
            query["_id"] = {"$gt": ObjectId(after)}
        docs = self.collection.find(query, {"_id": True, "key": True}).sort("_id", 1).limit(limit)
        return [(str(doc["_id"]), doc["key"]) for doc in docs]

    def recorded_keys(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` a record points at (tombstoned ones included)."""
        if not keys:
            return set()
        docs = self.collection.find({"key": {"$in": keys}}, {"key": True, "_id": False})
        return {doc["key"] for doc in docs}
