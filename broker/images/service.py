"""The image library: read, list, edit, count uses and delete the caller's images."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from broker import domain, quota
from broker.db.images import Page
from broker.domain import Image, Principal
from broker.errors import Forbidden, NotFound
from broker.extension import Broker
from broker.images.downloads import sign_listing


def get_image(broker: Broker, principal: Principal, image_id: str) -> Image:
    """The image, or NotFound when it does not exist or belongs to someone else."""
    return _found(broker.db.images.get(image_id, principal))


def list_images(broker: Broker, principal: Principal, query: dict[str, Any]) -> Page:
    """A page of the caller's images (or anyone's, for an admin); with ``sign``, each image
    carries a signed GET."""
    owner = query.get("owner")
    if owner is not None and owner != principal.sub and not principal.is_admin:
        raise Forbidden("only admins can list another user's images")
    if owner is None and not principal.is_admin:
        owner = principal.sub
    page = broker.db.images.page(
        principal,
        owner=owner,
        kind=query.get("kind"),
        q=query.get("q"),
        sort=query.get("sort", "newest"),
        limit=query.get("limit", 20),
        cursor=query.get("cursor"),
    )
    if query.get("sign"):
        page = replace(page, images=sign_listing(broker, page.images))
    return page


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
        image = _found(broker.db.images.update(image, fields))
    if changes.get("is_primary") is True:
        image = _found(broker.db.images.make_primary(replace(image), now))
    return image


def record_usage(broker: Broker, principal: Principal, image_id: str) -> Image:
    """Count one use of the image."""
    image = get_image(broker, principal, image_id)
    return _found(broker.db.images.record_usage(image, domain.utcnow()))


def delete_image(broker: Broker, principal: Principal, image_id: str) -> None:
    """Remove the object from the bucket, then the record.

    The record is tombstoned first (hidden at once); if the bucket delete fails it stays, so a
    retry or the sweeper finishes the job and no object outlives its record.
    """
    image = _found(broker.db.images.mark_deleting(image_id, principal, domain.utcnow()))
    broker.lookups.forget(image.id)
    finish_delete(broker, image)


def finish_delete(broker: Broker, image: Image) -> None:
    """Delete a tombstoned image's object, then its record, and give back its quota share."""
    broker.bucket.delete(image.key)
    quota.release_image(broker, broker.db.images.remove(image.id))


def _found(image: Image | None) -> Image:
    if image is None:
        raise NotFound("no such image")
    return image
