"""The image library: read, list, edit, count uses and delete images.

Who may do what is :mod:`broker.domain`'s rule: an image the caller cannot see answers 404, a
change to one they can see but not change (a reader, or someone else's public image) 403.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from broker import domain, quota
from broker.db.images import Page
from broker.domain import Image, Principal
from broker.errors import NotFound
from broker.extension import Broker
from broker.images.downloads import requested_variant, sign_listing
from broker.variants.service import remove_variant_objects


def get_image(broker: Broker, principal: Principal, image_id: str) -> Image:
    """The image, or NotFound when it does not exist or the caller may not see it."""
    return _found(broker.db.images.get(image_id, principal))


def list_images(broker: Broker, principal: Principal, query: dict[str, Any]) -> Page:
    """A page of the images the query's ``owner`` and the caller's role allow (see
    ``domain.listing_scope``); with ``sign``, each image carries a signed GET."""
    owner, visibility = domain.listing_scope(principal, query.get("owner"))
    variant = requested_variant(broker, query.get("variant"))
    page = broker.db.images.page(
        owner=owner,
        visibility=visibility,
        kind=query.get("kind"),
        q=query.get("q"),
        sort=query.get("sort", "newest"),
        limit=query.get("limit", 20),
        cursor=query.get("cursor"),
    )
    if query.get("sign"):
        page = replace(page, images=sign_listing(broker, page.images, variant=variant))
    return page


def update_image(
    broker: Broker, principal: Principal, image_id: str, changes: dict[str, Any]
) -> Image:
    """Edit caption, kind, tags, the primary flag or the visibility."""
    image = _changeable(broker, principal, image_id)
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
    visibility = changes.get("visibility")
    if visibility is not None and visibility != image.visibility:
        fields["visibility"] = visibility
        if visibility == domain.PUBLIC:
            # Used unless the image holds a token already (a concurrent request made it public).
            fields["public_token"] = domain.new_public_token()
    if fields:
        fields["updated_at"] = now
        updated = _found(broker.db.images.update(image, fields))
        if "visibility" in fields:
            # This process stops signing it for others (and answering its old link) at once;
            # the other processes' caches within BROKER_LOOKUP_CACHE_TTL.
            broker.lookups.forget(image)
        image = updated
    if changes.get("is_primary") is True:
        image = _found(broker.db.images.make_primary(replace(image), now))
    return image


def record_usage(broker: Broker, principal: Principal, image_id: str) -> Image:
    """Count one use of the image: a change, so its owner's or an admin's to make.

    Others may see a public image but not move it up its owner's ``most_used`` listing.
    """
    image = _changeable(broker, principal, image_id)
    return _found(broker.db.images.record_usage(image, domain.utcnow()))


def delete_image(broker: Broker, principal: Principal, image_id: str) -> None:
    """Remove the object from the bucket, then the record.

    The record is tombstoned first (hidden at once); if the bucket delete fails it stays, so a
    retry or the sweeper finishes the job and no object outlives its record.
    """
    image = None
    if principal.may_write:
        # Finds the caller's own image (any, for an admin), an earlier tombstone included.
        image = broker.db.images.mark_deleting(image_id, principal, domain.utcnow())
    if image is None:
        _changeable(broker, principal, image_id)  # 404 when unseen, else 403
        raise NotFound("no such image")  # deleted meanwhile
    broker.lookups.forget(image)
    finish_delete(broker, image)


def finish_delete(broker: Broker, image: Image) -> None:
    """Delete a tombstoned image's object and its variants, then its record, and give back its
    quota share (variants count in no quota)."""
    broker.bucket.delete(image.key)
    if broker.settings.variants or image.variants:
        # The recorded variants, and what a worker stored but has not recorded yet (its own
        # record then fails on the tombstone and it deletes what it stored after this listing).
        remove_variant_objects(broker, image.key, [v.key for v in image.variants.values() if v.key])
        broker.db.variant_jobs.discard(image.id, domain.utcnow())
    quota.release_image(broker, broker.db.images.remove(image.id))


def _changeable(broker: Broker, principal: Principal, image_id: str) -> Image:
    """The image if the caller may change it; 404 when they cannot see it, else 403."""
    image = get_image(broker, principal, image_id)
    domain.check_may_change(principal, image.owner)
    return image


def _found(image: Image | None) -> Image:
    if image is None:
        raise NotFound("no such image")
    return image
