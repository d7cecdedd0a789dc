"""MongoDB: the ``images``, ``uploads`` and ``quotas`` collections and their indexes.

Works against any MongoDB (standalone, replica set) and the wire-compatible test server: no
transactions and no ``$text`` are needed. Invariants are held by indexes (unique key, one primary
per owner and kind) and by single-document atomic updates.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from broker.domain import (
    ABORTED,
    CONFIRMED,
    ENDED,
    PENDING,
    Image,
    PendingUpload,
    Principal,
    utcnow,
)
from broker.errors import Unavailable
from broker.metrics import DEPENDENCY_ERRORS
from broker.pagination import ID_FIELD, SORTS, decode_cursor, encode_cursor, keyset_steps
from broker.settings import Settings

DEFAULT_DB_NAME = "broker"

log = logging.getLogger(__name__)
_Repository = TypeVar("_Repository")

# Upload records stay until the sweeper has cleaned their key after the PUT URL died (their
# ``sweep_after``), then this long before MongoDB's TTL monitor removes them: confirm keeps
# answering a late retry with the image, and the record says what happened.
PENDING_RETENTION = timedelta(days=2)


def _index_specs() -> list[tuple[str, list[tuple[str, int]], dict[str, Any]]]:
    """(collection, keys, options) for every index the queries rely on."""
    specs: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = [
        ("images", [("key", ASCENDING)], {"unique": True, "name": "key_unique"}),
        # At most one primary per (owner, kind): the database, not the code, holds the invariant.
        (
            "images",
            [("owner", ASCENDING), ("kind", ASCENDING)],
            {
                "unique": True,
                "partialFilterExpression": {"is_primary": True},
                "name": "one_primary_per_owner_kind",
            },
        ),
        ("images", [("deleting_at", ASCENDING)], {"sparse": True, "name": "deleting_at"}),
        ("uploads", [("key", ASCENDING)], {"unique": True, "name": "key_unique"}),
        (
            "uploads",
            [("state", ASCENDING), ("confirm_by", ASCENDING)],
            {"name": "state_confirm_by"},
        ),
        ("uploads", [("purge_at", ASCENDING)], {"expireAfterSeconds": 0, "name": "purge_at_ttl"}),
        # Only uploads the sweeper still has to clean carry the field: the index stays small.
        ("uploads", [("sweep_after", ASCENDING)], {"sparse": True, "name": "sweep_after"}),
    ]
    # Every list shape (owner or all, with or without kind, each sort) walks an index in order,
    # so a page costs the same at any depth.
    for sort in SORTS:
        for by_owner in (False, True):
            for by_kind in (False, True):
                keys = _list_index_keys(sort, by_owner=by_owner, by_kind=by_kind)
                name = _list_index_name(sort, by_owner=by_owner, by_kind=by_kind)
                specs.append(("images", keys, {"name": name}))
    return specs


def _list_index_keys(sort: str, *, by_owner: bool, by_kind: bool) -> list[tuple[str, int]]:
    prefix = [("owner", ASCENDING)] if by_owner else []
    prefix += [("kind", ASCENDING)] if by_kind else []
    return prefix + SORTS[sort]


def _list_index_name(sort: str, *, by_owner: bool, by_kind: bool) -> str:
    return "_".join(
        ["list", *(["owner"] if by_owner else []), *(["kind"] if by_kind else []), sort]
    )


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


@contextmanager
def _unavailable_on(errors: type[PyMongoError]) -> Iterator[None]:
    """Turn ``errors`` into Unavailable, as storage.py does for S3: callers see one taxonomy."""
    try:
        yield
    except errors as e:
        # The detail (host, port, replica set) goes to the log only, never to the client.
        log.warning("MongoDB unavailable: %s", e)
        DEPENDENCY_ERRORS.labels("mongodb").inc()
        raise Unavailable("the database is unavailable, retry later") from e


def _reports_unavailable(cls: type[_Repository]) -> type[_Repository]:
    """Make every public method of ``cls`` raise Unavailable when MongoDB cannot be reached.

    Other driver errors (a duplicate key, a refused operation) stay what they are: they are
    either handled by the repository or a bug.
    """
    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_"):
            setattr(cls, name, _unavailable_on(ConnectionFailure)(member))
    return cls


@_reports_unavailable
class ImageRepository:
    """Reads and writes confirmed images."""

    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self.collection = collection

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


def _pending_from_doc(doc: Mapping[str, Any]) -> PendingUpload:
    return PendingUpload(
        id=doc["_id"],
        key=doc["key"],
        owner=doc["owner"],
        filename=doc["filename"],
        content_type=doc["content_type"],
        size=doc["size"],
        kind=doc["kind"],
        caption=doc.get("caption"),
        content_md5=doc.get("content_md5"),
        checksum_sha256=doc.get("checksum_sha256"),
        state=doc["state"],
        created_at=doc["created_at"],
        expires_at=doc["expires_at"],
        confirm_by=doc["confirm_by"],
        quota_held=bool(doc.get("quota_held")),
    )


@_reports_unavailable
class UploadRepository:
    """Pending uploads: presigned, awaiting confirm."""

    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self.collection = collection

    def create(self, pending: PendingUpload) -> None:
        """Record a new pending upload (kept until the sweeper has cleaned up after it)."""
        doc = asdict(pending)
        doc["_id"] = doc.pop("id")
        # After this nothing can PUT any more (the URL expired, and a PUT started just before
        # has had the confirm grace to finish): the sweeper cleans the key from then on.
        doc["sweep_after"] = pending.confirm_by
        self.collection.insert_one(doc)

    def remove(self, upload_id: str) -> None:
        """Forget an upload whose grant was never handed out."""
        self.collection.delete_one({"_id": upload_id})

    def for_owner(self, key: str, owner: str) -> PendingUpload | None:
        """The upload of ``key`` if ``owner`` presigned it."""
        doc = self.collection.find_one({"key": key, "owner": owner})
        return _pending_from_doc(doc) if doc else None

    def claim(self, upload_id: str, state: str, reason: str | None = None) -> str:
        """Atomically move a pending upload to a final state; return the state it ends in.

        The result differs from ``state`` when someone else closed the upload first. Confirmed,
        the upload's quota reservation passes to the image in the same write: from then on
        removing the image gives it back, never the upload.
        """
        changes: dict[str, Any] = {"state": state, "reason": reason, "closed_at": utcnow()}
        if state == CONFIRMED:
            changes["quota_held"] = False
        doc = self.collection.find_one_and_update(
            {"_id": upload_id, "state": PENDING},
            {"$set": changes},
            projection={"state": True},
            return_document=ReturnDocument.AFTER,
        )
        return str(doc["state"]) if doc else self.state_of(upload_id)

    def overdue(self, before: datetime, limit: int) -> list[PendingUpload]:
        """Pending uploads whose confirm deadline passed before ``before``."""
        docs = self.collection.find({"state": PENDING, "confirm_by": {"$lt": before}}).limit(limit)
        return [_pending_from_doc(doc) for doc in docs]

    def stalled(self, state: str, before: datetime, limit: int) -> list[PendingUpload]:
        """Uploads left in ``state`` since before ``before`` (a sweep that failed midway)."""
        docs = self.collection.find({"state": state, "closed_at": {"$lt": before}}).limit(limit)
        return [_pending_from_doc(doc) for doc in docs]

    def take_over(self, upload_id: str, state: str, before: datetime) -> bool:
        """Atomically take a stalled upload (so one sweeper retries it); False if another did."""
        result = self.collection.update_one(
            {"_id": upload_id, "state": state, "closed_at": {"$lt": before}},
            {"$set": {"closed_at": utcnow()}},
        )
        return result.modified_count == 1

    def settle(self, upload_id: str, from_state: str, to_state: str) -> None:
        """Move an upload from one closed state to the next."""
        self.collection.update_one(
            {"_id": upload_id, "state": from_state}, {"$set": {"state": to_state}}
        )

    def unswept(self, before: datetime, limit: int) -> list[PendingUpload]:
        """Ended uploads whose key the sweeper must clean (their URL died before ``before``)."""
        docs = self.collection.find(
            {"sweep_after": {"$lt": before}, "state": {"$in": list(ENDED)}}
        ).limit(limit)
        return [_pending_from_doc(doc) for doc in docs]

    def swept(self, upload_id: str) -> None:
        """Record that the upload's key is clean for good; the record may be purged later."""
        self.collection.update_one(
            {"_id": upload_id},
            {"$unset": {"sweep_after": ""}, "$set": {"purge_at": utcnow() + PENDING_RETENTION}},
        )

    def hold_quota(self, upload_id: str) -> bool:
        """Mark the upload as holding a quota reservation; False if it already did."""
        result = self.collection.update_one(
            {"_id": upload_id, "quota_held": {"$ne": True}}, {"$set": {"quota_held": True}}
        )
        return result.modified_count == 1

    def holds_quota(self, upload_id: str) -> bool:
        """Whether the upload holds a quota reservation."""
        return self.collection.count_documents({"_id": upload_id, "quota_held": True}) == 1

    def drop_quota(self, upload_id: str) -> bool:
        """Clear the upload's reservation mark; True only for the caller that cleared it."""
        result = self.collection.update_one(
            {"_id": upload_id, "quota_held": True}, {"$set": {"quota_held": False}}
        )
        return result.modified_count == 1

    def state_of(self, upload_id: str) -> str:
        """The upload's current state (``aborted`` if its record is gone)."""
        doc = self.collection.find_one({"_id": upload_id}, {"state": True})
        return str(doc["state"]) if doc else ABORTED


@dataclass(frozen=True)
class Usage:
    """How many images and bytes an owner has recorded."""

    images: int
    bytes: int


@_reports_unavailable
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


@_reports_unavailable
class IndexBootstrap:
    """Creates the indexes once per process, on first use, so no deployment depends on an
    operator running ``flask ensure-indexes`` before the first request.

    Creating an index that exists is a no-op, and MongoDB lets several clients create the same
    one at once, so every worker of every instance may do this as it starts serving. Requests
    wait for the one attempt in flight (the unique indexes must exist before two confirms of one
    key can race). If MongoDB is unreachable the attempt fails like any query (503) and the next
    request retries; any other refusal (an index of the same name with other options) is logged
    and serving goes on: ``flask ensure-indexes`` then shows the error to fix.
    """

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self._database = database
        self._done = False
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        """Whether the indexes were created (or creating them was given up on)."""
        return self._done

    def mark_done(self) -> None:
        """Record that the indexes exist (created by ``ensure_indexes``)."""
        self._done = True

    def ensure(self) -> None:
        """Create the indexes unless done; raise Unavailable if MongoDB cannot be reached."""
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            try:
                create_indexes(self._database)
            except ConnectionFailure:
                raise
            except PyMongoError as e:
                log.error("cannot create the MongoDB indexes (run flask ensure-indexes): %s", e)
            self._done = True


@_reports_unavailable
@dataclass(frozen=True)
class Repositories:
    """The MongoDB client and the repositories built on it."""

    client: MongoClient[dict[str, Any]]
    database: Database[dict[str, Any]]
    images: ImageRepository
    uploads: UploadRepository
    quotas: QuotaRepository
    indexes: IndexBootstrap

    def ping(self) -> None:
        """Raise Unavailable unless the server answers (any refusal, auth included, counts)."""
        with _unavailable_on(PyMongoError):
            self.client.admin.command("ping")

    def ensure_indexes(self) -> list[str]:
        """Create every index (idempotent); return their names."""
        names = create_indexes(self.database)
        self.indexes.mark_done()
        return names


def create_indexes(database: Database[dict[str, Any]]) -> list[str]:
    """Create every index the queries rely on (idempotent); return their names."""
    names = []
    for collection, keys, options in _index_specs():
        names.append(database[collection].create_index(keys, **options))
    return names


def connect(settings: Settings) -> Repositories:
    """Open a (lazy) client and build the repositories."""
    timeout = settings.mongodb_timeout_ms
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        tzinfo=UTC,
        # Fail fast: a request should answer 503 within seconds, not hang for pymongo's 30 s.
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=max(timeout * 3, 10_000),
        connect=False,
        appname="image-broker",
    )
    database = client.get_default_database(default=settings.mongodb_db or DEFAULT_DB_NAME)
    if settings.mongodb_db:
        database = client[settings.mongodb_db]
    return Repositories(
        client=client,
        database=database,
        images=ImageRepository(database["images"]),
        uploads=UploadRepository(database["uploads"]),
        quotas=QuotaRepository(database["quotas"]),
        indexes=IndexBootstrap(database),
    )
