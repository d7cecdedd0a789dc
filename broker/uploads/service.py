"""Uploads: presign a PUT straight into the bucket, then confirm what was PUT.

Each use case is a short chain of named steps over the domain rules, MongoDB and the bucket.
Exactly one of confirm and the sweeper (:mod:`broker.uploads.sweep`) wins each upload.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from broker import domain, metrics, quota
from broker.domain import Image, PendingUpload, Principal
from broker.errors import Conflict, NotFound, UploadInvalid
from broker.extension import Broker
from broker.storage import SignedRequest, StorageNotFound

log = logging.getLogger(__name__)

# Bound once: resolving labels on every call costs more than the increment.
_PRESIGNED = metrics.UPLOADS.labels("presigned")
_CONFIRMED = metrics.UPLOADS.labels("confirmed")
_REJECTED = metrics.UPLOADS.labels("rejected")
_PUT_SIGNATURES = metrics.SIGNATURES.labels("PUT")


@dataclass(frozen=True)
class PresignedUpload:
    """What a client needs to PUT its bytes straight into the bucket."""

    upload_id: str
    key: str
    request: SignedRequest
    expires_at: datetime


def presign_upload(
    broker: Broker, principal: Principal, request: dict[str, Any]
) -> PresignedUpload:
    """Check the declaration, choose the key, hold the quota, record the upload, sign the PUT."""
    if broker.settings.require_checksum and not (
        request.get("content_md5") or request.get("checksum_sha256")
    ):
        # Without one the bucket cannot tell the declared bytes from any others of the length.
        raise domain.field_error(
            "content_md5", "required (the base64 MD5 of the bytes), or checksum_sha256"
        )
    content_type = domain.normalise_type(request["filetype"])
    kind = request.get("kind") or broker.policy.default_kind
    domain.check_declared_upload(broker.policy, content_type, request["size"], kind)
    if request.get("content_md5"):
        domain.decode_md5(request["content_md5"])
    if request.get("checksum_sha256"):
        domain.check_sha256(request["checksum_sha256"])

    now = domain.utcnow()
    expires_at = now + timedelta(seconds=broker.settings.upload_expires)
    pending = PendingUpload(
        id=domain.new_upload_id(),
        key=domain.new_object_key(principal.sub, content_type),
        owner=principal.sub,
        filename=domain.display_name(request["filename"], content_type),
        content_type=content_type,
        size=request["size"],
        kind=kind,
        caption=request.get("caption"),
        content_md5=request.get("content_md5"),
        checksum_sha256=request.get("checksum_sha256"),
        state=domain.PENDING,
        created_at=now,
        expires_at=expires_at,
        # The PUT may start just before the URL expires and take a while, so confirm stays
        # possible for a grace period after it.
        confirm_by=expires_at + timedelta(seconds=broker.settings.confirm_grace),
        quota_held=True,
    )
    signed = broker.bucket.presign_put(
        pending.key,
        content_type=content_type,
        size=pending.size,
        content_md5=pending.content_md5,
        checksum_sha256=pending.checksum_sha256,
        tagging=domain.pending_tagging() if broker.settings.s3_tagging else None,
        acl=broker.settings.s3_object_acl or None,
        cache_control=domain.STORED_CACHE_CONTROL,
        expires_in=broker.settings.upload_expires,
    )
    # Hold the quota and record only after signing succeeded, so a failure leaves nothing.
    quota.reserve(broker, pending.owner, pending.size)
    try:
        broker.db.uploads.create(pending)
    except Exception:
        # Best effort: if MongoDB is gone this fails too, and recount-quotas mends the count.
        with suppress(Exception):
            broker.db.quotas.release(pending.owner, pending.size)
        raise
    _PRESIGNED.inc()
    _PUT_SIGNATURES.inc()
    return PresignedUpload(pending.id, pending.key, signed, expires_at)


def confirm_upload(
    broker: Broker, principal: Principal, request: dict[str, Any]
) -> tuple[Image, bool]:
    """Verify the uploaded object against its declaration and record it; idempotent.

    Returns the image and whether this call created it. Exactly one of confirm and the sweeper
    wins an upload: both move it out of ``pending`` atomically, and the loser backs off.
    """
    pending = broker.db.uploads.for_owner(request["key"], principal.sub)
    if pending is None:
        # Upload records are purged a while after their deadline; the image outlives them.
        recorded = broker.db.images.get_by_key(request["key"], Principal(principal.sub))
        if recorded is None:
            raise NotFound("no pending upload with this key")
        return recorded, False
    if pending.state == domain.CONFIRMED:
        return _confirmed_image(broker, pending), False
    if pending.state != domain.PENDING:
        raise _no_longer_pending(pending.state)
    _check_confirm_matches_presign(pending, request)

    # A confirm that crashed after recording the image left it behind: finish that one.
    image = broker.db.images.get_by_key(pending.key, Principal(pending.owner))
    created = False
    if image is None:
        if domain.utcnow() > pending.confirm_by:
            raise Conflict("the upload is no longer pending (expired)")
        try:
            verified = _verified_image(broker, pending, request)
        except _ConfirmedMeanwhile:
            return _confirmed_image(broker, pending), False
        if not pending.quota_held and not quota.reserve_at_confirm(broker, pending):
            rejection = quota.over_quota("the user's image or byte quota is used up")
            _reject(broker, pending, rejection.message)
            raise rejection
        image, created = broker.db.images.insert(verified)

    state = broker.db.uploads.claim(pending.id, domain.CONFIRMED)
    if state != domain.CONFIRMED:
        # The sweeper expired the upload while we verified; it deletes the object.
        if created:
            broker.db.images.remove(image.id)
        quota.release_upload(broker, pending)
        raise _no_longer_pending(state)
    if created:
        _CONFIRMED.inc()
    return image, created


def _confirmed_image(broker: Broker, pending: PendingUpload) -> Image:
    image = broker.db.images.get_by_key(pending.key, Principal(pending.owner))
    if image is None:
        raise NotFound("the image of this upload has been deleted")
    return image


def _check_confirm_matches_presign(pending: PendingUpload, request: dict[str, Any]) -> None:
    filename = request.get("filename")
    if (
        filename is not None
        and domain.display_name(filename, pending.content_type) != pending.filename
    ):
        raise UploadInvalid("filename: differs from the one given at presign")
    filetype = request.get("filetype")
    if filetype is not None and domain.normalise_type(filetype) != pending.content_type:
        raise UploadInvalid("filetype: differs from the one given at presign")


def _verified_image(broker: Broker, pending: PendingUpload, request: dict[str, Any]) -> Image:
    """HEAD the object, read its first bytes, and build the image record from what is stored."""
    try:
        head = broker.bucket.head(pending.key)
        if head is None:
            raise StorageNotFound(pending.key)
        try:
            domain.check_object_head(pending, head)
            prefix = broker.bucket.read_prefix(pending.key, domain.VERIFY_READ_BYTES)
            width, height = domain.check_image_content(broker.policy, pending.content_type, prefix)
            kind = request.get("kind") or pending.kind
            domain.check_kind(broker.policy, kind)
        except UploadInvalid as rejection:
            _reject(broker, pending, rejection.message)
            raise
        if broker.settings.s3_tagging:
            # Out of reach of the lifecycle rule that expires never-confirmed objects.
            broker.bucket.tag(pending.key, {domain.STATE_TAG: domain.CONFIRMED_TAG})
    except StorageNotFound:
        _object_missing(broker, pending)

    now = domain.utcnow()
    caption = request.get("caption", pending.caption)
    return Image(
        id=broker.db.images.new_id(),
        key=pending.key,
        owner=pending.owner,
        filename=pending.filename,
        content_type=pending.content_type,
        size=head.size,
        width=width,
        height=height,
        content_md5=pending.content_md5 or domain.md5_from_etag(head.etag),
        etag=head.etag.strip('"') if head.etag else None,
        kind=kind,
        is_primary=False,
        caption=caption,
        tags=[],
        usage_count=0,
        last_used_at=None,
        created_at=now,
        updated_at=now,
    )


class _ConfirmedMeanwhile(Exception):
    """A concurrent confirm of the same upload finished while this one verified."""


def _object_missing(broker: Broker, pending: PendingUpload) -> NoReturn:
    state = broker.db.uploads.state_of(pending.id)
    if state == domain.CONFIRMED:
        raise _ConfirmedMeanwhile
    if state != domain.PENDING:
        # The sweeper expired the upload (and deleted the object) while we verified it.
        raise _no_longer_pending(state)
    # Not closed: the client may still PUT (the URL can be valid) and confirm again.
    raise UploadInvalid("the object was not found in the bucket: PUT it before confirming")


def _no_longer_pending(state: str) -> Conflict:
    return Conflict(f"the upload is no longer pending ({domain.reported_state(state)})")


def _reject(broker: Broker, pending: PendingUpload, reason: str) -> None:
    # The bucket must only ever hold what was verified: delete first, then close the upload.
    broker.bucket.delete(pending.key)
    if broker.db.uploads.claim(pending.id, domain.REJECTED, reason) == domain.REJECTED:
        quota.release_upload(broker, pending)
    _REJECTED.inc()
    log.info("upload %s rejected: %s", pending.id, reason)
