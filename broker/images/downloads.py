"""Signed GETs: every way of showing an image (by id, by key, in batches, in a listing, the
``/content`` redirect) ends in :func:`sign_download`.

The URL pins the response's type, disposition and caching; requests within one signing window
get the same URL, signed once (:class:`broker.caches.SignedUrlMemo`); what signing needs about
an image comes from the in-process lookup cache when it can (:class:`broker.caches.LookupCache`).

Variants: :func:`requested_variant` reads the ``variant`` a request names, and
:func:`signed_object` decides what object that means for an image (the variant once it is
ready, else the original); every answer says which it signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker import domain, metrics, signing
from broker.domain import Image, Principal, SigningTarget
from broker.errors import NotFound
from broker.extension import Broker
from broker.variants.records import ORIGINAL

_GET_SIGNATURES = metrics.SIGNATURES.labels("GET")


@dataclass(frozen=True)
class SignedUrl:
    """A signed GET URL, when it stops working, and what it shows: a variant's name or
    ``original``."""

    url: str
    expires_at: datetime
    variant: str = ORIGINAL


@dataclass
class SignedImage(Image):
    """An image of a listing with its signed GET (``GET /images?sign=1``)."""

    url: str = ""
    expires_at: datetime | None = None
    variant: str = ORIGINAL


@dataclass(frozen=True)
class SignedObject:
    """What a signed GET of an image shows: the object, its type, the name it is offered
    under, and the variant it is (``original`` for the original)."""

    key: str
    content_type: str
    filename: str
    variant: str


def requested_variant(broker: Broker, name: str | None) -> str | None:
    """The variant a request names: None for the original (none named, or ``original``);
    ValidationFailed naming ``variant`` when no such variant is configured."""
    if name is None or name == ORIGINAL:
        return None
    if not any(spec.name == name for spec in broker.settings.variants):
        configured = ", ".join([spec.name for spec in broker.settings.variants] + [ORIGINAL])
        raise domain.field_error("variant", f"no such variant (configured: {configured})")
    return name


def signed_object(target: SigningTarget, variant: str | None) -> SignedObject:
    """What to sign for this image and this variant: the variant once it is ready, else the
    original (a pending or failed variant shows the original meanwhile)."""
    made = target.variant(variant) if variant is not None else None
    if variant is not None and made is not None and made.ready:
        assert made.key is not None and made.content_type is not None
        # Offered as the original's name with the variant's extension (IMG_1234.webp).
        filename = domain.display_name(target.filename, made.content_type)
        return SignedObject(made.key, made.content_type, filename, variant)
    return SignedObject(target.key, target.content_type, target.filename, ORIGINAL)


def may_be_stale(target: SigningTarget | None, variant: str | None) -> bool:
    """Whether a cached target may be behind: the variant asked for was not ready when read
    (the worker may have made it since), so the image is read again."""
    if target is None or variant is None:
        return False
    made = target.variant(variant)
    return made is None or not made.ready


def sign_image(
    broker: Broker,
    principal: Principal,
    image_id: str,
    *,
    variant: str | None = None,
    expires_in: int | None = None,
    disposition: str = "inline",
) -> SignedUrl:
    """A signed GET for an image the caller may see, else NotFound; skips MongoDB when cached
    (a variant that was still pending when cached is read again: it may be ready now)."""
    target = broker.lookups.get(image_id, principal)
    if target is None or may_be_stale(target, variant):
        image = broker.db.images.get(image_id, principal)
        if image is None:
            raise NotFound("no such image")
        broker.lookups.put_many([image])
        target = SigningTarget.of(image)
    return sign_download(
        broker, target, variant=variant, expires_in=expires_in, disposition=disposition
    )


def sign_by_key(
    broker: Broker,
    principal: Principal,
    key: str,
    *,
    variant: str | None = None,
    expires_in: int | None = None,
    disposition: str = "inline",
) -> SignedUrl:
    """A signed GET for the image stored under ``key``, if the caller may see it; else NotFound."""
    image = broker.db.images.get_by_key(key, principal)
    if image is None:
        raise NotFound("no such image")
    return sign_download(
        broker,
        SigningTarget.of(image),
        variant=variant,
        expires_in=expires_in,
        disposition=disposition,
    )


@dataclass(frozen=True)
class DownloadTerms:
    """What every signed GET of one request shares: when it is signed, for how long, and with
    which key. Worked out once per request, not once per URL of a batch or listing."""

    lifetime: int
    signed_at: datetime
    valid_for: int
    expires_at: datetime
    # The memo's window (the signing instant) and access key; None: this URL is signed afresh.
    memo_scope: tuple[int, str] | None


def download_terms(broker: Broker, expires_in: int | None = None) -> DownloadTerms:
    """The terms of the signed GETs a request asks for (``expires_in``: its lifetime, if any).

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
    # Windowed, the same inputs give the same URL all window long: sign it once.
    windowed = valid_for != lifetime
    memo_scope = (int(signed_at.timestamp()), broker.bucket.access_key_id()) if windowed else None
    return DownloadTerms(
        lifetime, signed_at, valid_for, signed_at + timedelta(seconds=valid_for), memo_scope
    )


def sign_download(
    broker: Broker,
    target: SigningTarget,
    *,
    variant: str | None = None,
    expires_in: int | None = None,
    disposition: str = "inline",
    terms: DownloadTerms | None = None,
) -> SignedUrl:
    """A signed GET of the image (or of its ``variant`` once ready) whose response type and
    disposition are pinned by the signature.

    ``terms`` (from :func:`download_terms`) are shared by the URLs of one request; without
    them they are worked out for this one (from ``expires_in``).
    """
    shown = signed_object(target, variant)
    if terms is None:
        terms = download_terms(broker, expires_in)
    memo_key = (
        (shown.key, disposition, terms.lifetime, *terms.memo_scope)
        if terms.memo_scope is not None
        else None
    )
    if memo_key is not None and (url := broker.urls.get(memo_key)) is not None:
        return SignedUrl(url, terms.expires_at, shown.variant)
    url = broker.bucket.presign_get(
        shown.key,
        expires_in=terms.valid_for,
        content_type=shown.content_type,
        disposition=domain.content_disposition(disposition, shown.filename),
        cache_control=domain.download_cache_control(terms.valid_for),
        now=terms.signed_at,
    )
    _GET_SIGNATURES.inc()
    if memo_key is not None:
        broker.urls.put(memo_key, url)
    if not broker.bucket.presigner.pins_signing_time:
        # Such a signer signs when it is called, which may be a second after terms.signed_at:
        # announce the expiry the URL itself carries, not the one worked out beforehand.
        return SignedUrl(url, signing.valid_until(url), shown.variant)
    return SignedUrl(url, terms.expires_at, shown.variant)


def sign_many(
    broker: Broker, principal: Principal, image_ids: list[str], *, variant: str | None = None
) -> dict[str, SignedUrl]:
    """Signed GETs (of ``variant`` where ready) for the ids the caller may see; the others are
    simply absent."""
    wanted = list(dict.fromkeys(image_ids))
    cached = broker.lookups.get_many(wanted, principal)
    targets = {
        image_id: target for image_id, target in cached.items() if not may_be_stale(target, variant)
    }
    missing = [image_id for image_id in wanted if image_id not in targets]
    if missing:
        found = broker.db.images.get_many(missing, principal)
        broker.lookups.put_many(found)
        targets.update({image.id: SigningTarget.of(image) for image in found})
    terms = download_terms(broker)
    return {
        image_id: sign_download(broker, target, variant=variant, terms=terms)
        for image_id, target in targets.items()
    }


def sign_listing(broker: Broker, images: list[Image], *, variant: str | None = None) -> list[Image]:
    """The images of a listing, each with a signed GET (of ``variant`` where it is ready): the
    page's own records say which variants are, so no other query is made."""
    terms = download_terms(broker)
    signed: list[Image] = []
    for image in images:
        url = sign_download(broker, SigningTarget.of(image), variant=variant, terms=terms)
        signed.append(
            SignedImage(**vars(image), url=url.url, expires_at=url.expires_at, variant=url.variant)
        )
    return signed
