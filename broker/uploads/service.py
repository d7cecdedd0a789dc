"""Use cases: each one a short chain of named steps over the domain rules, MongoDB and the bucket.

Views parse and serialize; this module decides. Nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from broker import domain, metrics
from broker.db.images import Page
from broker.domain import Image, PendingUpload, Principal, SigningTarget
from broker.errors import Conflict, Forbidden, NotFound, TooLarge, Unavailable, UploadInvalid
from broker.extension import Broker
from broker.storage import SignedRequest, StorageNotFound

log = logging.getLogger(__name__)

# Bound once: resolving labels on every call costs more than the increment.
_PRESIGNED = metrics.UPLOADS.labels("presigned")
_CONFIRMED = metrics.UPLOADS.labels("confirmed")
_REJECTED = metrics.UPLOADS.labels("rejected")
_PUT_SIGNATURES = metrics.SIGNATURES.labels("PUT")
_GET_SIGNATURES = metrics.SIGNATURES.labels("GET")


def client_config(broker: Broker) -> dict[str, Any]:
    """The limits a client should check before presigning (the broker checks them again)."""
    settings = broker.settings
    return {
        "allowed_types": list(settings.allowed_types),
        "extensions": {t: domain.extension_for(t) for t in settings.allowed_types},
        "max_upload_bytes": settings.max_upload_bytes,
        "kinds": list(settings.kinds),
        "default_kind": "gallery" if "gallery" in settings.kinds else settings.kinds[0],
        "upload_expires": settings.upload_expires,
        "download_expires": settings.download_expires,
        "download_max_expires": settings.download_max_expires,
        "max_pixels": settings.max_pixels,
        "min_width": settings.min_width,
        "min_height": settings.min_height,
        "max_width": settings.max_width,
        "max_height": settings.max_height,
    }


def _hold_quota(broker: Broker, owner: str, size: int) -> None:
    """Count a new upload's image and bytes against its owner's quota, or refuse it (413).

    One conditional ``$inc``: concurrent presigns cannot overshoot. The reservation is held by
    the upload from then on: kept at confirm (where it passes to the image), given back when
    the upload ends any other way, exactly once (see ``_cancel_quota``).
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
    raise _over_quota(f"{limit} (uploads in progress count too)")


def _over_quota(limit: str) -> TooLarge:
    return TooLarge(f"quota: {limit}", details={"quota": [limit]})


def _reserve_quota(broker: Broker, pending: PendingUpload) -> None:
    """Count an upload presigned before presign held quota against its owner's, once.

    The mark on the upload record makes it once: a concurrent confirm of the same upload, or
    one retried after a crash, finds the mark and gives back what it reserved itself.
    """
    settings = broker.settings
    quotas, uploads = broker.db.quotas, broker.db.uploads
    if quotas.reserve(
        pending.owner, pending.size, settings.quota_max_images, settings.quota_max_bytes
    ):
        if not uploads.hold_quota(pending.id):
            quotas.release(pending.owner, pending.size)
        return
    if uploads.holds_quota(pending.id):
        return
    rejection = _over_quota("the user's image or byte quota is used up")
    _reject(broker, pending, rejection.message)
    raise rejection


def _cancel_quota(broker: Broker, pending: PendingUpload) -> None:
    """Give back the reservation of an upload that will never be confirmed, exactly once."""
    if broker.db.uploads.drop_quota(pending.id):
        broker.db.quotas.release(pending.owner, pending.size)


def _forget_image(broker: Broker, removed: Image | None) -> None:
    """Give back the quota of an image whose record was just removed."""
    if removed is not None:
        broker.db.quotas.release(removed.owner, removed.size)


# ---- presign ----------------------------------------------------------------------------------


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
    kind = request.get("kind") or client_config(broker)["default_kind"]
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
    _hold_quota(broker, pending.owner, pending.size)
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


# ---- confirm ----------------------------------------------------------------------------------


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
        raise Conflict(f"the upload is no longer pending ({_shown(pending.state)})")
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
        if not pending.quota_held:
            _reserve_quota(broker, pending)
        image, created = broker.db.images.insert(verified)

    state = broker.db.uploads.claim(pending.id, domain.CONFIRMED)
    if state != domain.CONFIRMED:
        # The sweeper expired the upload while we verified; it deletes the object.
        if created:
            broker.db.images.remove(image.id)
        _cancel_quota(broker, pending)
        raise Conflict(f"the upload is no longer pending ({_shown(state)})")
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
        id=_new_image_id(),
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
        raise Conflict(f"the upload is no longer pending ({_shown(state)})")
    # Not closed: the client may still PUT (the URL can be valid) and confirm again.
    raise UploadInvalid("the object was not found in the bucket: PUT it before confirming")


def _shown(state: str) -> str:
    """How a closed upload's state reads to a client."""
    return domain.EXPIRED if state == domain.EXPIRING else state


def _reject(broker: Broker, pending: PendingUpload, reason: str) -> None:
    # The bucket must only ever hold what was verified: delete first, then close the upload.
    broker.bucket.delete(pending.key)
    if broker.db.uploads.claim(pending.id, domain.REJECTED, reason) == domain.REJECTED:
        _cancel_quota(broker, pending)
    _REJECTED.inc()
    log.info("upload %s rejected: %s", pending.id, reason)


def _new_image_id() -> str:
    from bson import ObjectId

    return str(ObjectId())


# ---- read -------------------------------------------------------------------------------------


def get_image(broker: Broker, principal: Principal, image_id: str) -> Image:
    """The image, or NotFound when it does not exist or belongs to someone else."""
    image = broker.db.images.get(image_id, principal)
    if image is None:
        raise NotFound("no such image")
    return image


def get_image_by_key(broker: Broker, principal: Principal, key: str) -> Image:
    """The image stored under ``key``, or NotFound."""
    image = broker.db.images.get_by_key(key, principal)
    if image is None:
        raise NotFound("no such image")
    return image


def list_images(broker: Broker, principal: Principal, query: dict[str, Any]) -> Page:
    """A page of the caller's images (or anyone's, for an admin)."""
    owner = query.get("owner")
    if owner is not None and owner != principal.sub and not principal.is_admin:
        raise Forbidden("only admins can list another user's images")
    if owner is None and not principal.is_admin:
        owner = principal.sub
    return broker.db.images.page(
        principal,
        owner=owner,
        kind=query.get("kind"),
        q=query.get("q"),
        sort=query.get("sort", "newest"),
        limit=query.get("limit", 20),
        cursor=query.get("cursor"),
    )


# ---- signed GETs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedUrl:
    """A signed GET URL and when it stops working."""

    url: str
    expires_at: datetime


def signing_target(broker: Broker, principal: Principal, image_id: str) -> SigningTarget:
    """What signing the image needs, from the in-process cache when possible; else NotFound."""
    target = broker.lookups.get(image_id, principal)
    if target is None:
        image = get_image(broker, principal, image_id)
        broker.lookups.put_many([image])
        target = SigningTarget.of(image)
    return target


def sign_download(
    broker: Broker,
    target: SigningTarget | Image,
    *,
    expires_in: int | None = None,
    disposition: str = "inline",
) -> SignedUrl:
    """A signed GET whose response type and disposition are pinned by the signature.

    Requests within one signing window get the same URL (see ``domain.signing_window``).
    """
    settings = broker.settings
    lifetime = domain.clamp_expires(
        expires_in, settings.download_expires, settings.download_max_expires
    )
    # Only a signer that signs at a chosen instant can give one URL for a whole window.
    window = settings.signed_url_window if broker.bucket.presigner.pins_signing_time else 0
    signed_at, valid_for = domain.signing_window(
        domain.utcnow(), window, lifetime, settings.download_max_expires
    )
    expires_at = signed_at + timedelta(seconds=valid_for)
    # Windowed, the same inputs give the same URL all window long: sign it once.
    windowed = valid_for != lifetime
    memo_key = (
        (
            target.id,
            disposition,
            lifetime,
            int(signed_at.timestamp()),
            broker.bucket.access_key_id(),
        )
        if windowed
        else None
    )
    if memo_key is not None and (url := broker.urls.get(memo_key)) is not None:
        return SignedUrl(url, expires_at)
    url = broker.bucket.presign_get(
        target.key,
        expires_in=valid_for,
        content_type=target.content_type,
        disposition=domain.content_disposition(disposition, target.filename),
        cache_control=domain.download_cache_control(valid_for),
        now=signed_at,
    )
    _GET_SIGNATURES.inc()
    if memo_key is not None:
        broker.urls.put(memo_key, url)
    return SignedUrl(url, expires_at)


def sign_many(broker: Broker, principal: Principal, image_ids: list[str]) -> dict[str, SignedUrl]:
    """Signed GETs for the ids the caller may see; the others are simply absent."""
    wanted = list(dict.fromkeys(image_ids))
    targets: dict[str, SigningTarget] = {}
    missing = []
    for image_id in wanted:
        target = broker.lookups.get(image_id, principal)
        if target is None:
            missing.append(image_id)
        else:
            targets[image_id] = target
    if missing:
        found = broker.db.images.get_many(missing, principal)
        broker.lookups.put_many(found)
        targets.update({image.id: SigningTarget.of(image) for image in found})
    return {image_id: sign_download(broker, target) for image_id, target in targets.items()}


# ---- change -----------------------------------------------------------------------------------


def update_image(
    broker: Broker, principal: Principal, image_id: str, changes: dict[str, Any]
) -> Image:
    """Edit caption, kind, tags or the primary flag."""
    image = get_image(broker, principal, image_id)
    now = domain.utcnow()
    fields: dict[str, Any] = {}
    if "caption" in changes:
        fields["caption"] = changes["caption"]
    if "tags" in changes:
        fields["tags"] = domain.normalise_tags(changes["tags"])
    if "kind" in changes and changes["kind"] != image.kind:
        domain.check_kind(broker.policy, changes["kind"])
        fields["kind"] = changes["kind"]
        # A primary image stops being primary when it moves to another kind.
        fields["is_primary"] = False
    if changes.get("is_primary") is False:
        fields["is_primary"] = False
    if fields:
        fields["updated_at"] = now
        updated = broker.db.images.update(image, fields)
        if updated is None:
            raise NotFound("no such image")
        image = updated
    if changes.get("is_primary") is True:
        promoted = broker.db.images.make_primary(replace(image), now)
        if promoted is None:
            raise NotFound("no such image")
        image = promoted
    return image


def record_usage(broker: Broker, principal: Principal, image_id: str) -> Image:
    """Count one use of the image."""
    image = get_image(broker, principal, image_id)
    used = broker.db.images.record_usage(image, domain.utcnow())
    if used is None:
        raise NotFound("no such image")
    return used


def delete_image(broker: Broker, principal: Principal, image_id: str) -> None:
    """Remove the object from the bucket, then the record.

    The record is tombstoned first (hidden at once); if the bucket delete fails it stays, so a
    retry or the sweeper finishes the job and no object outlives its record.
    """
    image = broker.db.images.mark_deleting(image_id, principal, domain.utcnow())
    if image is None:
        raise NotFound("no such image")
    broker.lookups.forget(image.id)
    broker.bucket.delete(image.key)
    _forget_image(broker, broker.db.images.remove(image.id))


def _expire(broker: Broker, pending: PendingUpload) -> None:
    # If the bucket fails here the upload stays "expiring" and a later sweep takes it over.
    broker.bucket.delete(pending.key)
    # A confirm that crashed between recording and claiming left a record: it never won,
    # and whatever it reserved is given back (once, even if it crashed before recording).
    broker.db.images.remove_by_key(pending.key)
    _cancel_quota(broker, pending)
    broker.db.uploads.settle(pending.id, domain.EXPIRING, domain.EXPIRED)
    # Overdue means the URL died before the delete above: nothing can come back.
    broker.db.uploads.swept(pending.id)


def _clean_ended(broker: Broker, upload: PendingUpload) -> None:
    """Delete whatever stands under an ended upload's key, unless a live image stands there.

    Until its URL died, a rejected, refused or deleted upload's key could be PUT again (the
    URL writes once, but only over nothing); that object was never verified and has no record.
    """
    if not (upload.state == domain.CONFIRMED and broker.db.images.is_live(upload.key)):
        broker.bucket.delete(upload.key)
    if upload.state != domain.CONFIRMED:
        # A reservation a crash left on a closed upload; confirmed ones passed theirs on.
        _cancel_quota(broker, upload)
    broker.db.uploads.swept(upload.id)


# ---- sweep ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    expired_uploads: int
    finished_deletes: int
    failed: int
    cleaned_uploads: int = 0


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
        if uploads.claim(pending.id, domain.EXPIRING) == domain.EXPIRING:
            ok = _attempt(_expire, broker, pending)
            expired, failed = expired + ok, failed + (not ok)
    for pending in uploads.stalled(domain.EXPIRING, now - DELETE_TAKEOVER, batch):
        if uploads.take_over(pending.id, domain.EXPIRING, now - DELETE_TAKEOVER):
            ok = _attempt(_expire, broker, pending)
            expired, failed = expired + ok, failed + (not ok)
    for image in broker.db.images.tombstones(now - DELETE_TAKEOVER, batch):
        ok = _attempt(_finish_delete, broker, image)
        finished, failed = finished + ok, failed + (not ok)
    # Each step is idempotent (a delete, a mark dropped once), so sweepers need no claim here.
    for upload in uploads.unswept(now, batch):
        ok = _attempt(_clean_ended, broker, upload)
        cleaned, failed = cleaned + ok, failed + (not ok)
    return SweepReport(expired, finished, failed, cleaned)


def _finish_delete(broker: Broker, image: Image) -> None:
    broker.bucket.delete(image.key)
    _forget_image(broker, broker.db.images.remove(image.id))


def _attempt(step: Callable[[Broker, Any], None], broker: Broker, item: Any) -> bool:
    # One unreachable object must not stop the sweep; what failed stays claimed for a retry.
    try:
        step(broker, item)
    except Unavailable as e:
        log.warning("sweep: %s left for a later sweep: %s", getattr(item, "key", item), e.message)
        return False
    return True
