"""Following a public link: the token finds a public image, which is signed like any other.

The link needs no token, so nothing here knows a caller: the token alone decides, and only a
public image that is not being deleted answers. Lookups go through the in-process cache, so a
link that died (the image turned private or went) answers 404 here at once and in the other
processes within ``BROKER_LOOKUP_CACHE_TTL`` seconds.
"""

from __future__ import annotations

from datetime import datetime

from broker import domain
from broker.domain import SigningTarget
from broker.errors import NotFound
from broker.extension import Broker
from broker.images.downloads import SignedUrl, may_be_stale, requested_variant, sign_download

# A redirect taken from a cache at the very end of its max-age still leads to a URL that works
# for the fetch that follows it (clock skew, a slow hop).
EXPIRY_MARGIN_SECONDS = 10


def follow_public_link(broker: Broker, token: str, variant: str | None = None) -> SignedUrl:
    """The signed GET a public link leads to (of ``variant`` once it is ready, else of the
    original); NotFound for any token that is not a live link, 400 for an unknown variant."""
    name = requested_variant(broker, variant)
    target = _linked_image(broker, token, name)
    return sign_download(broker, target, variant=name)


def redirect_max_age(broker: Broker, signed: SignedUrl, now: datetime) -> int:
    """How long caches may keep the redirect to ``signed``: never past the URL's own expiry
    (less a margin), nor longer than ``BROKER_PUBLIC_LINK_MAX_AGE``."""
    left = int((signed.expires_at - now).total_seconds()) - EXPIRY_MARGIN_SECONDS
    return max(0, min(left, broker.settings.public_link_max_age))


def _linked_image(broker: Broker, token: str, variant: str | None) -> SigningTarget:
    # Anything not shaped like a token is no link: no database round trip for junk.
    if not domain.is_public_token(token):
        raise NotFound("no such link")
    target = broker.lookups.by_link(token)
    if target is not None and not may_be_stale(target, variant):
        return target
    image = broker.db.images.get_public(token)
    if image is None:
        raise NotFound("no such link")
    broker.lookups.put_many([image])
    return SigningTarget.of(image)
