"""The ``uploads`` collection: presigned uploads, their states, and who holds the quota."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from pymongo.collection import Collection

from broker.db.failures import reports_unavailable
from broker.domain import ABORTED, CONFIRMED, ENDED, PENDING, PendingUpload, utcnow
from broker.multipart import MultipartPlan

# Upload records stay until the sweeper has cleaned their key after the PUT URL died (their
# ``sweep_after``), then this long before MongoDB's TTL monitor removes them: confirm keeps
# answering a late retry with the image, and the record says what happened.
PENDING_RETENTION = timedelta(days=2)

# The digests signed for a multipart upload's parts (up to 10,000 of them) are read by complete
# only: every other read leaves them out.
_DIGESTS = "part_md5"
_WITHOUT_DIGESTS = {_DIGESTS: False}


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
        multipart=MultipartPlan(**doc["multipart"]) if doc.get("multipart") else None,
        visibility=doc.get("visibility"),
    )


@reports_unavailable
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
        doc = self.collection.find_one({"key": key, "owner": owner}, _WITHOUT_DIGESTS)
        return _pending_from_doc(doc) if doc else None

    def get_for_owner(self, upload_id: str, owner: str) -> PendingUpload | None:
        """The upload with this id if ``owner`` started it."""
        doc = self.collection.find_one({"_id": upload_id, "owner": owner}, _WITHOUT_DIGESTS)
        return _pending_from_doc(doc) if doc else None

    def record_signed_digests(self, upload_id: str, digests: Mapping[int, str]) -> bool:
        """Record the Content-MD5 each part's new URL signs (the newest wins); False unless
        the upload is still pending."""
        result = self.collection.update_one(
            {"_id": upload_id, "state": PENDING},
            {"$set": {f"{_DIGESTS}.{number}": md5 for number, md5 in digests.items()}},
        )
        return result.matched_count == 1

    def signed_digests(self, upload_id: str) -> dict[int, str]:
        """The newest Content-MD5 signed for each part of a multipart upload."""
        doc = self.collection.find_one({"_id": upload_id}, {_DIGESTS: True}) or {}
        return {int(number): md5 for number, md5 in (doc.get(_DIGESTS) or {}).items()}

    def close(self, upload_id: str, state: str, reason: str | None = None) -> bool:
        """Atomically move a pending upload to a final state; True only for the one caller
        whose write moved it, even when a concurrent one chose the same state.

        Whoever gets False must not act on the upload (give its quota back, delete, count): the
        winner does. Confirmed, the upload's quota reservation passes to the image in the same
        write: from then on removing the image gives it back, never the upload.
        """
        changes: dict[str, Any] = {"state": state, "reason": reason, "closed_at": utcnow()}
        if state == CONFIRMED:
            changes["quota_held"] = False
        result = self.collection.update_one({"_id": upload_id, "state": PENDING}, {"$set": changes})
        return result.modified_count == 1

    def overdue(self, before: datetime, limit: int) -> list[PendingUpload]:
        """Pending uploads whose confirm deadline passed before ``before``."""
        docs = self.collection.find(
            {"state": PENDING, "confirm_by": {"$lt": before}}, _WITHOUT_DIGESTS
        ).limit(limit)
        return [_pending_from_doc(doc) for doc in docs]

    def stalled(self, state: str, before: datetime, limit: int) -> list[PendingUpload]:
        """Uploads left in ``state`` since before ``before`` (a sweep that failed midway)."""
        docs = self.collection.find(
            {"state": state, "closed_at": {"$lt": before}}, _WITHOUT_DIGESTS
        ).limit(limit)
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
            {"sweep_after": {"$lt": before}, "state": {"$in": list(ENDED)}}, _WITHOUT_DIGESTS
        ).limit(limit)
        return [_pending_from_doc(doc) for doc in docs]

    def claim_sweep(self, upload_id: str, before: datetime, retry_at: datetime) -> bool:
        """Atomically take an ended upload's key to clean (so one sweeper cleans it); False if
        another did. Until ``retry_at`` no sweeper takes it again (one that died mid-way)."""
        result = self.collection.update_one(
            {"_id": upload_id, "sweep_after": {"$lt": before}, "state": {"$in": list(ENDED)}},
            {"$set": {"sweep_after": retry_at}},
        )
        return result.modified_count == 1

    def give_back_sweep(self, upload_id: str, retry_at: datetime, due: datetime) -> None:
        """Hand back a claim (until ``retry_at``) whose cleaning failed, due again from ``due``."""
        self.collection.update_one(
            {"_id": upload_id, "sweep_after": retry_at}, {"$set": {"sweep_after": due}}
        )

    def swept(self, upload_id: str) -> None:
        """Record that the upload's key is clean for good; the record may be purged later."""
        self.collection.update_one(
            {"_id": upload_id},
            {"$unset": {"sweep_after": ""}, "$set": {"purge_at": utcnow() + PENDING_RETENTION}},
        )

    def mark_quota_held(self, upload_id: str) -> bool:
        """Mark the upload as holding a quota reservation; False if it already did."""
        result = self.collection.update_one(
            {"_id": upload_id, "quota_held": {"$ne": True}}, {"$set": {"quota_held": True}}
        )
        return result.modified_count == 1

    def is_quota_held(self, upload_id: str) -> bool:
        """Whether the upload holds a quota reservation."""
        return self.collection.count_documents({"_id": upload_id, "quota_held": True}) == 1

    def clear_quota_held(self, upload_id: str) -> bool:
        """Clear the upload's reservation mark; True only for the caller that cleared it."""
        result = self.collection.update_one(
            {"_id": upload_id, "quota_held": True}, {"$set": {"quota_held": False}}
        )
        return result.modified_count == 1

    def state_of(self, upload_id: str) -> str:
        """The upload's current state (``aborted`` if its record is gone)."""
        doc = self.collection.find_one({"_id": upload_id}, {"state": True})
        return str(doc["state"]) if doc else ABORTED
