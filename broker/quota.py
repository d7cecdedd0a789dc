"""Per-user quotas of images and bytes, counted from presign on.

Presign reserves an upload's image and declared bytes (one conditional ``$inc``: concurrent
presigns cannot overshoot) and marks the upload as holding them. Confirm hands the reservation
to the image in the same write that confirms the upload; an upload that ends any other way gives
it back, exactly once; removing an image gives back its share.
"""

from __future__ import annotations

from broker.domain import Image, PendingUpload
from broker.errors import TooLarge
from broker.extension import Broker


def reserve(broker: Broker, owner: str, size: int) -> None:
    """Count a new upload's image and bytes against its owner's quota, or refuse it (413).

    The reservation is held by the upload from then on: kept at confirm (where it passes to the
    image), given back when the upload ends any other way (:func:`release_upload`).
    """
    settings = broker.settings
    quotas = broker.db.quotas
    if quotas.reserve(owner, size, settings.quota_max_images, settings.quota_max_bytes):
        return
    usage = quotas.usage(owner)
    if settings.quota_max_images and usage.images >= settings.quota_max_images:
        limit = f"at most {settings.quota_max_images} images per user"
    else:
        limit = f"at most {settings.quota_max_bytes} bytes of images per user"
    raise over_quota(f"{limit} (uploads in progress count too)")


def over_quota(limit: str) -> TooLarge:
    """The 413 of a request over its owner's quota, naming the limit."""
    return TooLarge(f"quota: {limit}", details={"quota": [limit]})


def reserve_at_confirm(broker: Broker, pending: PendingUpload) -> bool:
    """Count an upload presigned before presign held quota against its owner's, once; False
    when the quota is used up.

    The mark on the upload record makes it once: a concurrent confirm of the same upload, or
    one retried after a crash, finds the mark and gives back what it reserved itself.
    """
    settings = broker.settings
    quotas, uploads = broker.db.quotas, broker.db.uploads
    if quotas.reserve(
        pending.owner, pending.size, settings.quota_max_images, settings.quota_max_bytes
    ):
        if not uploads.mark_quota_held(pending.id):
            quotas.release(pending.owner, pending.size)
        return True
    return uploads.is_quota_held(pending.id)


def release_upload(broker: Broker, pending: PendingUpload) -> None:
    """Give back the reservation of an upload that will never be confirmed, exactly once."""
    if broker.db.uploads.clear_quota_held(pending.id):
        broker.db.quotas.release(pending.owner, pending.size)


def release_image(broker: Broker, removed: Image | None) -> None:
    """Give back the share of an image whose record was just removed (None: nothing was)."""
    if removed is not None:
        broker.db.quotas.release(removed.owner, removed.size)
