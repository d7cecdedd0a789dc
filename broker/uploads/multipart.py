"""Multipart uploads: create, sign parts, list what the bucket holds, complete, abort.

A multipart upload is a pending upload like a presigned one (same record, same quota held from
create on, same sweeper) whose object the bucket assembles from parts. Each part URL signs the
part's exact length and its Content-MD5, and the broker remembers the newest digest signed for
each part; complete joins exactly the parts 1..N whose bytes those digests name, then verifies
and records the object as confirm does, and also checks its composite ETag (the MD5 of the part
MD5s) against the signed digests. The bucket's own upload id never leaves the broker.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker import domain, metrics, multipart, quota
from broker.domain import Image, PendingUpload, Principal
from broker.errors import Conflict, NotFound, UploadInvalid, ValidationFailed
from broker.extension import Broker
from broker.multipart import MultipartPlan
from broker.storage import PartsRefused, SignedRequest, StorageNotFound, StoredPart
from broker.uploads import service

log = logging.getLogger(__name__)

_CREATED = metrics.UPLOADS.labels("multipart_created")
_ABORTED = metrics.UPLOADS.labels("aborted")
_PART_SIGNATURES = metrics.SIGNATURES.labels("PUT")


@dataclass(frozen=True)
class CreatedUpload:
    """A multipart upload the client can now send parts of."""

    upload_id: str
    key: str
    part_size: int
    part_count: int
    expires_at: datetime


@dataclass(frozen=True)
class SignedPart:
    """The URL and headers one part's PUT must use."""

    part_number: int
    request: SignedRequest


def create(broker: Broker, principal: Principal, request: dict[str, Any]) -> CreatedUpload:
    """Check the declaration, plan the parts, start the upload in the bucket, hold the quota."""
    domain.check_may_write(principal)
    # Each part carries its own digest, so a whole-file one is optional here.
    declaration = service.declare(broker, request, checksum_required=False)
    part_size, part_count = multipart.plan_parts(declaration.size, request.get("part_size"))
    key = domain.new_object_key(principal.sub, declaration.content_type)
    bucket_upload_id = broker.bucket.create_multipart(
        key,
        content_type=declaration.content_type,
        cache_control=domain.STORED_CACHE_CONTROL,
        tagging=domain.pending_tagging() if broker.settings.s3_tagging else None,
        acl=broker.settings.s3_object_acl or None,
    )
    plan = MultipartPlan(bucket_upload_id, part_size, part_count)
    pending = service.new_pending_upload(
        broker, principal, declaration, broker.settings.multipart_expires, key=key, multipart=plan
    )
    try:
        service.hold_and_record(broker, pending)
    except Exception:
        # Over quota, or MongoDB failed: nothing may stay behind in the bucket either.
        with suppress(Exception):
            broker.bucket.abort_multipart(key, bucket_upload_id)
        raise
    _CREATED.inc()
    return CreatedUpload(pending.id, key, part_size, part_count, pending.expires_at)


def sign_parts(
    broker: Broker, principal: Principal, upload_id: str, parts: list[dict[str, Any]]
) -> list[SignedPart]:
    """A PUT URL for each part asked for, signing its length and Content-MD5 (re-signing too)."""
    pending, plan = _open_upload(broker, principal, upload_id)
    numbers = [part["part_number"] for part in parts]
    multipart.check_part_numbers(numbers, plan.part_count)
    bad = [
        part["part_number"] for part in parts if not multipart.decodes_as_md5(part["content_md5"])
    ]
    if bad:
        message = f"content_md5 must be the base64 of a 16-byte MD5 digest (part {bad[0]})"
        raise ValidationFailed(f"parts: {message}", details={"parts": [message]})
    # Signed at the whole second (SigV4's resolution): a part URL never outlives the upload,
    # after whose deadline nothing may be added to it.
    signed_at = domain.utcnow().replace(microsecond=0)
    lifetime = min(
        broker.settings.upload_expires, int((pending.expires_at - signed_at).total_seconds())
    )
    if lifetime < 1:
        raise Conflict("the upload is no longer pending (expired)")
    digests = {part["part_number"]: part["content_md5"] for part in parts}
    # Recorded before any URL is handed out: complete checks the parts against these.
    if not broker.db.uploads.record_signed_digests(pending.id, digests):
        raise service.closed_meanwhile(broker, pending)
    signed = [
        SignedPart(
            number,
            broker.bucket.presign_part(
                pending.key,
                plan.bucket_upload_id,
                number,
                content_md5=md5,
                length=multipart.part_length(pending.size, plan.part_size, number),
                expires_in=lifetime,
                now=signed_at,
            ),
        )
        for number, md5 in digests.items()
    ]
    _PART_SIGNATURES.inc(len(signed))
    return signed


def stored_parts(broker: Broker, principal: Principal, upload_id: str) -> list[StoredPart]:
    """The parts the bucket holds for the upload so far (to resume it)."""
    pending, plan = _open_upload(broker, principal, upload_id, deadline=False)
    try:
        return broker.bucket.list_parts(pending.key, plan.bucket_upload_id)
    except StorageNotFound:
        raise _gone_from_the_bucket(broker, pending) from None


def complete(
    broker: Broker, principal: Principal, upload_id: str, parts: list[dict[str, Any]]
) -> tuple[Image, bool]:
    """Join the signed parts into the object, then verify and record it as confirm does.

    Idempotent: a finished upload completed again gives its image (and False).
    """
    pending = _upload_of(broker, principal, upload_id)
    if pending.state == domain.CONFIRMED:
        return service.confirmed_image(broker, pending), False
    plan = _open_plan(pending)
    if domain.utcnow() > pending.confirm_by:
        raise Conflict("the upload is no longer pending (expired)")
    signed = broker.db.uploads.signed_digests(pending.id)
    # A wrong list changes nothing: the upload stays open for a corrected one.
    listed = [(part["part_number"], part["etag"]) for part in parts]
    joined = multipart.check_complete_list(listed, plan.part_count, signed)
    try:
        broker.bucket.complete_multipart(pending.key, plan.bucket_upload_id, joined)
    except PartsRefused:
        raise UploadInvalid(
            "parts: the bucket does not hold every listed part with the bytes its URL signed: "
            "list the parts (GET …/parts), upload the missing ones, then complete again"
        ) from None
    except StorageNotFound:
        # Completed before (a retry after a lost answer, or a concurrent complete) or aborted:
        # the object tells which. Recording below verifies it either way.
        if broker.bucket.head(pending.key) is None:
            raise _gone_from_the_bucket(broker, pending) from None
    # RGW 16 answers complete with an empty ETag: the one checked is the object's, from HEAD.
    expected = multipart.expected_etag(plan.part_count, signed)
    return service.record_upload(broker, pending, {}, expected_etag=expected)


def abort(broker: Broker, principal: Principal, upload_id: str) -> None:
    """Abort the upload: the bucket drops its parts, the quota is given back."""
    pending = _upload_of(broker, principal, upload_id)
    plan = _open_plan(pending)
    # The bucket first: once it refuses every part, closing the record cannot race a PUT.
    broker.bucket.abort_multipart(pending.key, plan.bucket_upload_id)
    # Only the abort whose write closed the upload acts on it: a concurrent one (or a call
    # that found it gone from the bucket meanwhile) answers 409 as any later call would.
    if not broker.db.uploads.close(pending.id, domain.ABORTED, "aborted by its owner"):
        raise service.closed_meanwhile(broker, pending)
    # A complete racing this abort may have joined the parts already: that object goes too.
    broker.bucket.delete(pending.key)
    quota.release_upload(broker, pending)
    _ABORTED.inc()


def _upload_of(broker: Broker, principal: Principal, upload_id: str) -> PendingUpload:
    # Every step of an upload is a change: a reader token takes none (403), even with the sub
    # that started it.
    domain.check_may_write(principal)
    pending = broker.db.uploads.get_for_owner(upload_id, principal.sub)
    if pending is None or pending.multipart is None:
        raise NotFound("no multipart upload with this id")
    return pending


def _open_plan(pending: PendingUpload) -> MultipartPlan:
    if pending.state != domain.PENDING:
        raise service.no_longer_pending(pending.state)
    assert pending.multipart is not None  # _upload_of found a multipart upload
    return pending.multipart


def _open_upload(
    broker: Broker, principal: Principal, upload_id: str, *, deadline: bool = True
) -> tuple[PendingUpload, MultipartPlan]:
    pending = _upload_of(broker, principal, upload_id)
    plan = _open_plan(pending)
    if deadline and domain.utcnow() >= pending.expires_at:
        raise Conflict("the upload is no longer pending (expired)")
    return pending, plan


def _gone_from_the_bucket(broker: Broker, pending: PendingUpload) -> Conflict:
    # The bucket no longer knows the upload while the broker still has it open: it was aborted
    # behind the broker's back (a lifecycle rule, an operator). Nothing can finish it now.
    assert pending.multipart is not None
    if not broker.db.uploads.close(pending.id, domain.ABORTED, "gone from the bucket"):
        # Closed meanwhile (by a concurrent call that found it gone too, an abort, the sweep).
        return service.closed_meanwhile(broker, pending)
    quota.release_upload(broker, pending)
    log.warning("multipart upload %s was gone from the bucket", pending.id)
    return Conflict("the upload is no longer pending (aborted in the bucket)")
