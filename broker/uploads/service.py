"""Uploads: presign a PUT straight into the bucket, then confirm what was PUT.

Each use case is a short chain of named steps over the domain rules, MongoDB and the bucket.
Exactly one of confirm and the sweeper (:mod:`broker.uploads.sweep`) wins each upload.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from broker import domain, metrics, quota
from broker.domain import Image, PendingUpload, Principal
from broker.errors import Conflict, NotFound, TooLarge, UploadInvalid
from broker.extension import Broker
from broker.multipart import MAX_SINGLE_PUT_SIZE, MultipartPlan
from broker.storage import SignedRequest, StorageNotFound
from broker.variants import records as variant_records
from broker.variants.service import image_recorded

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


@dataclass(frozen=True)
class Declaration:
    """What a client declares about the file it is about to upload (the presign body)."""

    filename: str
    content_type: str
    size: int
    kind: str
    caption: str | None
    content_md5: str | None
    checksum_sha256: str | None
    # None: the default for the kind, decided when the image is recorded (the kind may change).
    visibility: str | None = None


def declare(broker: Broker, request: dict[str, Any], *, checksum_required: bool) -> Declaration:
    """Check a presign body against the policy; shared by presign and multipart create."""
    if checksum_required and not (request.get("content_md5") or request.get("checksum_sha256")):
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
    return Declaration(
        filename=domain.display_name(request["filename"], content_type),
        content_type=content_type,
        size=request["size"],
        kind=kind,
        caption=request.get("caption"),
        content_md5=request.get("content_md5"),
        checksum_sha256=request.get("checksum_sha256"),
        visibility=request.get("visibility"),
    )


def new_pending_upload(
    broker: Broker,
    principal: Principal,
    declaration: Declaration,
    lifetime: int,
    *,
    key: str | None = None,
    multipart: MultipartPlan | None = None,
) -> PendingUpload:
    """The record of a new upload of ``declaration`` open for ``lifetime`` seconds, under
    ``key`` (a fresh one when None)."""
    now = domain.utcnow()
    # Its URLs are signed at this whole second (SigV4's resolution), so the deadline recorded
    # here is the one the first URL carries, not up to a second after it.
    expires_at = now.replace(microsecond=0) + timedelta(seconds=lifetime)
    return PendingUpload(
        id=domain.new_upload_id(),
        key=key or domain.new_object_key(principal.sub, declaration.content_type),
        owner=principal.sub,
        filename=declaration.filename,
        content_type=declaration.content_type,
        size=declaration.size,
        kind=declaration.kind,
        caption=declaration.caption,
        # A multipart object's bytes are checked part by part; a whole-file digest declared
        # for one could only be verified by reading all of it, so it is not recorded as one.
        content_md5=None if multipart else declaration.content_md5,
        checksum_sha256=None if multipart else declaration.checksum_sha256,
        state=domain.PENDING,
        created_at=now,
        expires_at=expires_at,
        # The last PUT may start just before the URLs expire and take a while, so confirm (or
        # complete) stays possible for a grace period after it.
        confirm_by=expires_at + timedelta(seconds=broker.settings.confirm_grace),
        quota_held=True,
        multipart=multipart,
        visibility=declaration.visibility,
    )


def hold_and_record(broker: Broker, pending: PendingUpload) -> None:
    """Count the upload against its owner's quota (413 when over) and record it."""
    quota.reserve(broker, pending.owner, pending.size)
    try:
        broker.db.uploads.create(pending)
    except Exception:
        # Best effort: if MongoDB is gone this fails too, and recount-quotas mends the count.
        with suppress(Exception):
            broker.db.quotas.release(pending.owner, pending.size)
        raise


def presign_upload(
    broker: Broker, principal: Principal, request: dict[str, Any]
) -> PresignedUpload:
    """Check the declaration, choose the key, hold the quota, record the upload, sign the PUT."""
    domain.check_may_write(principal)
    declaration = declare(broker, request, checksum_required=broker.settings.require_checksum)
    if declaration.size > MAX_SINGLE_PUT_SIZE:
        raise TooLarge(
            f"size: one PUT stores at most {MAX_SINGLE_PUT_SIZE} bytes: "
            "upload larger files in parts (POST /images/multipart)",
            details={"size": [f"must be at most {MAX_SINGLE_PUT_SIZE} for one PUT"]},
        )
    pending = new_pending_upload(broker, principal, declaration, broker.settings.upload_expires)
    signed = broker.bucket.presign_put(
        pending.key,
        content_type=pending.content_type,
        size=pending.size,
        content_md5=pending.content_md5,
        checksum_sha256=pending.checksum_sha256,
        tagging=domain.pending_tagging() if broker.settings.s3_tagging else None,
        acl=broker.settings.s3_object_acl or None,
        cache_control=domain.STORED_CACHE_CONTROL,
        expires_in=broker.settings.upload_expires,
        now=pending.created_at,
    )
    # Hold the quota and record only after signing succeeded, so a failure leaves nothing.
    hold_and_record(broker, pending)
    _PRESIGNED.inc()
    _PUT_SIGNATURES.inc()
    return PresignedUpload(pending.id, pending.key, signed)


def confirm_upload(
    broker: Broker, principal: Principal, request: dict[str, Any]
) -> tuple[Image, bool]:
    """Verify the uploaded object against its declaration and record it; idempotent.

    Returns the image and whether this call created it. Exactly one of confirm and the sweeper
    wins an upload: both move it out of ``pending`` atomically, and the loser backs off.
    """
    domain.check_may_write(principal)
    pending = broker.db.uploads.for_owner(request["key"], principal.sub)
    if pending is None:
        # Upload records are purged a while after their deadline; the image outlives them.
        recorded = broker.db.images.get_by_key(request["key"], Principal(principal.sub))
        if recorded is None or recorded.owner != principal.sub:
            # Someone else's image (a public one is visible) was never this caller's upload.
            raise NotFound("no pending upload with this key")
        return recorded, False
    if pending.state == domain.CONFIRMED:
        return confirmed_image(broker, pending), False
    if pending.state != domain.PENDING:
        raise no_longer_pending(pending.state)
    if pending.multipart is not None:
        # Its object exists only once complete joined the parts, and complete checks them.
        raise NotFound(
            "no presigned upload with this key: finish a multipart upload with "
            "POST /images/multipart/<upload_id>/complete"
        )
    _check_confirm_matches_presign(pending, request)
    return record_upload(broker, pending, request)


def record_upload(
    broker: Broker,
    pending: PendingUpload,
    request: dict[str, Any],
    *,
    expected_etag: str | None = None,
) -> tuple[Image, bool]:
    """Verify the pending upload's object as confirm does, record the image, close the upload.

    Shared by confirm and multipart complete: everything that follows "an image was recorded"
    hangs off here. ``request`` may override ``kind`` and ``caption``; ``expected_etag`` is
    the ETag the object must carry. Returns the image and whether this call created it.
    """
    # A confirm that crashed after recording the image left it behind: finish that one.
    image = broker.db.images.get_by_key(pending.key, Principal(pending.owner))
    created = False
    if image is None:
        if domain.utcnow() > pending.confirm_by:
            raise Conflict("the upload is no longer pending (expired)")
        try:
            verified = _verified_image(broker, pending, request, expected_etag)
        except _ConfirmedMeanwhile:
            return confirmed_image(broker, pending), False
        if not pending.quota_held and not quota.reserve_at_confirm(broker, pending):
            rejection = quota.over_quota("the user's image or byte quota is used up")
            reject(broker, pending, rejection.message)
            raise rejection
        image, created = broker.db.images.insert(verified)

    if not broker.db.uploads.close(pending.id, domain.CONFIRMED):
        state = broker.db.uploads.state_of(pending.id)
        if state == domain.CONFIRMED:
            # A concurrent confirm of the same upload closed it, with this very image (the key
            # is unique): what follows the recording is that confirm's to do, once.
            return image, created
        # The sweeper expired the upload while we verified; it deletes the object.
        if created:
            broker.db.images.remove(image.id)
        quota.release_upload(broker, pending)
        raise no_longer_pending(state)
    _CONFIRMED.inc()
    image_recorded(broker, image)
    return image, created


def confirmed_image(broker: Broker, pending: PendingUpload) -> Image:
    """The image a confirmed upload recorded (404 when it has been deleted since)."""
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


def _verified_image(
    broker: Broker, pending: PendingUpload, request: dict[str, Any], expected_etag: str | None
) -> Image:
    """HEAD the object, read its first bytes, and build the image record from what is stored."""
    try:
        # One ranged GET says what a HEAD would and holds the first bytes: one S3 round trip.
        read = broker.bucket.read_head(pending.key, domain.VERIFY_READ_BYTES)
        if read is None:
            raise StorageNotFound(pending.key)
        head, prefix = read
        try:
            domain.check_object_head(pending, head, expected_etag)
            width, height = domain.check_image_content(broker.policy, pending.content_type, prefix)
            kind = request.get("kind") or pending.kind
            domain.check_kind(broker.policy, kind)
        except UploadInvalid as rejection:
            reject(broker, pending, rejection.message)
            raise
        if broker.settings.s3_tagging:
            # Out of reach of the lifecycle rule that expires never-confirmed objects.
            broker.bucket.tag(pending.key, {domain.STATE_TAG: domain.CONFIRMED_TAG})
    except StorageNotFound:
        _object_missing(broker, pending)

    now = domain.utcnow()
    caption = request.get("caption", pending.caption)
    visibility = domain.initial_visibility(
        request.get("visibility") or pending.visibility, kind, broker.settings.public_kinds
    )
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
        visibility=visibility,
        public_token=domain.new_public_token() if visibility == domain.PUBLIC else None,
        variants=variant_records.pending_variants(broker.settings.variants),
    )


class _ConfirmedMeanwhile(Exception):
    """A concurrent confirm of the same upload finished while this one verified."""


def _object_missing(broker: Broker, pending: PendingUpload) -> NoReturn:
    state = broker.db.uploads.state_of(pending.id)
    if state == domain.CONFIRMED:
        raise _ConfirmedMeanwhile
    if state != domain.PENDING:
        # The sweeper expired the upload (and deleted the object) while we verified it.
        raise no_longer_pending(state)
    # Not closed: the client may still PUT (the URL can be valid) and confirm again.
    raise UploadInvalid("the object was not found in the bucket: PUT it before confirming")


def no_longer_pending(state: str) -> Conflict:
    """The 409 of a call on an upload that is over (confirmed, rejected, expired, aborted)."""
    return Conflict(f"the upload is no longer pending ({domain.reported_state(state)})")


def closed_meanwhile(broker: Broker, pending: PendingUpload) -> Conflict:
    """The 409 of a call that found the upload closed by another request meanwhile (the state
    it ended in, read now)."""
    return no_longer_pending(broker.db.uploads.state_of(pending.id))


def reject(broker: Broker, pending: PendingUpload, reason: str) -> None:
    """Delete the upload's object and close it as rejected (its quota given back, once).

    Raises the 409 of a finished upload when another request closed it first (a concurrent
    confirm rejected it too, or the sweeper expired it): that one gave the quota back.
    """
    # The bucket must only ever hold what was verified: delete first, then close the upload.
    # (Both racers delete: deleting a missing object succeeds, and neither may skip it.)
    broker.bucket.delete(pending.key)
    if not broker.db.uploads.close(pending.id, domain.REJECTED, reason):
        raise closed_meanwhile(broker, pending)
    quota.release_upload(broker, pending)
    _REJECTED.inc()
    log.info("upload %s rejected: %s", pending.id, reason)
