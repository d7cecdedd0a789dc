"""Signed GETs: every way of showing an image (by id, by key, in batches, in a listing, the
``/content`` redirect) ends in :func:`sign_download`.

The URL pins the response's type, disposition and caching; requests within one signing window
get the same URL, signed once (:class:`broker.caches.SignedUrlMemo`); what signing needs about
an image comes from the in-process lookup cache when it can (:class:`broker.caches.LookupCache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker import domain, metrics
from broker.domain import Image, Principal, SigningTarget
from broker.errors import NotFound
from broker.extension import Broker

_GET_SIGNATURES = metrics.SIGNATURES.labels("GET")


@dataclass(frozen=True)
class SignedUrl:
    """A signed GET URL and when it stops working."""

    url: str
    expires_at: datetime


@dataclass
class SignedImage(Image):
    """An image of a listing with its signed GET (``GET /images?sign=1``)."""

    url: str = ""
    expires_at: datetime | None = None


def resolve_variant(broker: Broker, target: SigningTarget, name: str | None) -> SigningTarget:
    """What to sign for ``target`` when ``variant=name`` was asked for: the original when no
    variant was named; a name the broker does not know is a 400 naming ``variant``.

    The one place a variant name is understood: no variants are configured yet, so every name
    is unknown. (The variants feature extends this to sign a variant's object once it is ready.)
    """
    if name is None:
        return target
    raise domain.field_error("variant", f"unknown variant {name[:64]!r}: none is configured")


def sign_image(
    broker: Broker,
    principal: Principal,
    image_id: str,
    *,
    expires_in: int | None = None,
    disposition: str = "inline",
) -> SignedUrl:
    """A signed GET for an image the caller may see, else NotFound; skips MongoDB when cached."""
    target = broker.lookups.get(image_id, principal)
    if target is None:
        image = broker.db.images.get(image_id, principal)
        if image is None:
            raise NotFound("no such image")
        broker.lookups.put_many([image])
        target = SigningTarget.of(image)
    return sign_download(broker, target, expires_in=expires_in, disposition=disposition)


def sign_by_key(
    broker: Broker,
    principal: Principal,
    key: str,
    *,
    expires_in: int | None = None,
    disposition: str = "inline",
) -> SignedUrl:
    """A signed GET for the image stored under ``key``, if the caller may see it; else NotFound."""
    image = broker.db.images.get_by_key(key, principal)
    if image is None:
        raise NotFound("no such image")
    return sign_download(broker, image, expires_in=expires_in, disposition=disposition)


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


def sign_listing(broker: Broker, images: list[Image]) -> list[Image]:
    """The images of a listing, each with a signed GET."""
    signed: list[Image] = []
    for image in images:
        url = sign_download(broker, image)
        signed.append(SignedImage(**vars(image), url=url.url, expires_at=url.expires_at))
    return signed
