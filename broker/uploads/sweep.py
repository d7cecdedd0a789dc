"""The sweep: what abandoned uploads and interrupted deletes leave behind, cleaned up.

Run by ``flask sweep`` (cron) on any number of hosts: every step claims its item atomically in
MongoDB first, so sweepers and concurrent confirms never act on one twice (each orphan is
deleted from the bucket once); a sweeper that dies mid-way leaves its items to be taken over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from broker import domain, quota
from broker.domain import PendingUpload
from broker.errors import Unavailable
from broker.extension import Broker
from broker.images.service import finish_delete
from broker.variants.service import sweep_orphans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    expired_uploads: int
    finished_deletes: int
    failed: int
    cleaned_uploads: int = 0
    orphan_variants: int = 0


# A delete that has not finished after this long is taken over by the sweeper (the request that
# started it has long given up: its S3 call has a timeout of seconds).
DELETE_TAKEOVER = timedelta(minutes=1)


def sweep(broker: Broker, *, batch: int = 500) -> SweepReport:
    """Delete what abandoned uploads and interrupted deletes left behind; safe to run anywhere.

    Every step claims its item atomically in MongoDB first, so several sweepers (cron on several
    hosts) and concurrent confirms never act on the same upload twice.
    """
    now = domain.utcnow()
    uploads = broker.db.uploads
    expired = finished = failed = cleaned = 0
    for pending in uploads.overdue(now, batch):
        # Only the sweeper whose write closed it may expire it: another sweeper's close ends
        # it in "expiring" too, so the state it ends in says nothing about who won.
        if uploads.close(pending.id, domain.EXPIRING):
            ok = _attempt(_expire, broker, pending)
            expired, failed = expired + ok, failed + (not ok)
    for pending in uploads.stalled(domain.EXPIRING, now - DELETE_TAKEOVER, batch):
        if uploads.take_over(pending.id, domain.EXPIRING, now - DELETE_TAKEOVER):
            ok = _attempt(_expire, broker, pending)
            expired, failed = expired + ok, failed + (not ok)
    # Cleaning a key is idempotent, but the claim makes each DELETE one sweeper's. Ended
    # uploads go before unfinished deletes: a key whose image is being deleted is left to that
    # delete (below), so this sweep deletes it once.
    # A claim whose step failed (the bucket answered badly) is handed back, due at once; one
    # whose sweeper died runs out after DELETE_TAKEOVER and is taken over.
    retry_at = now + DELETE_TAKEOVER
    for upload in uploads.unswept(now, batch):
        if uploads.claim_sweep(upload.id, now, retry_at):
            ok = _attempt(_clean_ended, broker, upload)
            if not ok:
                uploads.give_back_sweep(upload.id, retry_at, now)
            cleaned, failed = cleaned + ok, failed + (not ok)
    images = broker.db.images
    for image in images.tombstones(now - DELETE_TAKEOVER, batch):
        if images.take_over_delete(image.id, now - DELETE_TAKEOVER, now):
            ok = _attempt(finish_delete, broker, image)
            if not ok:
                images.give_back_delete(image.id, now, now - DELETE_TAKEOVER)
            finished, failed = finished + ok, failed + (not ok)
    # Variant objects whose image is gone: a slice of the bucket per sweep, resumed next time.
    orphans = 0
    try:
        orphans = sweep_orphans(broker, limit=2 * batch)
    except Unavailable as e:
        log.warning("sweep: variant objects left for a later sweep: %s", e.message)
        failed += 1
    return SweepReport(expired, finished, failed, cleaned, orphans)


def _expire(broker: Broker, pending: PendingUpload) -> None:
    # If the bucket fails here the upload stays "expiring" and a later sweep takes it over.
    _abort_in_the_bucket(broker, pending)
    broker.bucket.delete(pending.key)
    # A confirm that crashed between recording and claiming left a record: it never won,
    # and whatever it reserved is given back (once, even if it crashed before recording).
    broker.db.images.remove_by_key(pending.key)
    quota.release_upload(broker, pending)
    # Overdue means the URL died before the delete above: nothing can come back. Marked clean
    # before it is settled, so no sweeper ever sees it ended and still to clean.
    broker.db.uploads.swept(pending.id)
    broker.db.uploads.settle(pending.id, domain.EXPIRING, domain.EXPIRED)


def _clean_ended(broker: Broker, upload: PendingUpload) -> None:
    """Delete whatever stands under an ended upload's key, unless an image is recorded there.

    Until its URL died, a rejected, refused or deleted upload's key could be PUT again (the
    URL writes once, but only over nothing); that object was never verified and has no record.
    A key with an image record is the image's: live, it stays; being deleted, the delete (which
    removes the object before the record) deletes it. A multipart upload is aborted in the
    bucket too, should an earlier abort have failed.
    """
    if upload.state != domain.CONFIRMED:
        _abort_in_the_bucket(broker, upload)
    if not (upload.state == domain.CONFIRMED and broker.db.images.is_recorded(upload.key)):
        broker.bucket.delete(upload.key)
    if upload.state != domain.CONFIRMED:
        # A reservation a crash left on a closed upload; confirmed ones passed theirs on.
        quota.release_upload(broker, upload)
    broker.db.uploads.swept(upload.id)


def _abort_in_the_bucket(broker: Broker, upload: PendingUpload) -> None:
    # Once aborted, the bucket refuses every part of the upload: its part URLs are dead.
    if upload.multipart is not None:
        broker.bucket.abort_multipart(upload.key, upload.multipart.bucket_upload_id)


def _attempt(step: Callable[[Broker, Any], None], broker: Broker, item: Any) -> bool:
    # One unreachable object must not stop the sweep; what failed stays claimed for a retry.
    try:
        step(broker, item)
    except Unavailable as e:
        log.warning("sweep: %s left for a later sweep: %s", getattr(item, "key", item), e.message)
        return False
    return True
