"""In-process caches, bounded in size and age and safe across threads.

- :class:`LookupCache`: an image's id, and a public image's link token, → what signing a GET
  needs and who may have it (owner, key, type, filename, visibility, link token), so the
  signing hot path and public links can skip MongoDB. Entries live ``ttl`` seconds; a change of
  visibility or a delete in this process drops its entries at once. What a stale entry in
  another process can do, for at most ``ttl`` seconds after the change: sign the image for a
  caller who could see it before (a non-owner, while it was public; its owner or an admin after
  a delete, which the bucket answers with 404 once the object is gone), or answer its dead
  public link. ``BROKER_LOOKUP_CACHE_TTL`` is that bound; the visibility check runs on every hit.
- :class:`SignedUrlMemo`: the URL signed for an image within one signing window (bounded in
  size; its keys carry the window, so it needs no expiry).
- :class:`TokenCache`: verified bearer tokens → their caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cachetools import TTLCache

from broker.domain import Image, Principal, SigningTarget


class LookupCache:
    """id → SigningTarget and public-link token → SigningTarget, bounded in size and age, safe
    across threads. ``clock`` (seconds, monotonic) is what ages the entries."""

    def __init__(
        self, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = maxsize > 0 and ttl > 0
        size, age = max(maxsize, 1), ttl or 1
        self._entries: TTLCache[str, SigningTarget] = TTLCache(size, age, timer=clock)
        self._links: TTLCache[str, SigningTarget] = TTLCache(size, age, timer=clock)
        self._lock = threading.Lock()

    def get(self, image_id: str, principal: Principal) -> SigningTarget | None:
        """The cached target if present and visible to the caller."""
        if not self.enabled:
            return None
        with self._lock:
            target = self._entries.get(image_id)
        if target is None or not target.visible_to(principal):
            return None
        return target

    def by_link(self, token: str) -> SigningTarget | None:
        """The cached target of a public link, if present."""
        if not self.enabled:
            return None
        with self._lock:
            return self._links.get(token)

    def get_many(self, image_ids: list[str], principal: Principal) -> dict[str, SigningTarget]:
        """The cached targets visible to the caller, by id in the order asked (one lock for a
        whole batch)."""
        if not self.enabled:
            return {}
        entries = self._entries
        found = []
        # One clock reading for the batch (the timer's context freezes it) and one read per id:
        # ``TTLCache.get`` is ``in`` and then ``[]``, each with its own lookups and clock call.
        with self._lock, entries.timer:
            for image_id in image_ids:
                try:
                    found.append((image_id, entries[image_id]))
                except KeyError:  # absent or expired, as ``get`` would say
                    continue
        return {image_id: target for image_id, target in found if target.visible_to(principal)}

    def put_many(self, images: Iterable[Image]) -> None:
        """Remember the targets of freshly read images (public ones under their link too)."""
        if not self.enabled:
            return
        with self._lock:
            for image in images:
                target = SigningTarget.of(image)
                self._entries[image.id] = target
                if target.public_token is not None:
                    self._links[target.public_token] = target

    def forget(self, image: Image) -> None:
        """Drop an image's entries (it is being deleted, or its visibility changed)."""
        with self._lock:
            cached = self._entries.pop(image.id, None)
            for token in {image.public_token, cached.public_token if cached else None}:
                if token is not None:
                    self._links.pop(token, None)


# (object key, disposition, lifetime, window start, access key id) → signed URL
MemoKey = tuple[str, str, int, int, str]


class SignedUrlMemo:
    """The URL signed for an image within one signing window, so it is signed once per window.

    Within a window the URL is fully determined by the key; the access key id is part of it so
    a credential rotation never serves a URL signed with the previous key, and the window's
    start is part of it so an entry is never served after its window: an old window's entries
    are simply never asked for again. So entries need no expiry, only a bound on their number:
    when it is reached the memo starts afresh (a URL is then signed once more, a few µs). A
    plain dict, read without a lock (one ``dict.get`` is atomic), so a 100-URL batch pays no
    lock or timer per URL.
    """

    def __init__(self, maxsize: int, window: int) -> None:
        self.enabled = maxsize > 0 and window > 0
        self._maxsize = max(maxsize, 1)
        self._entries: dict[MemoKey, str] = {}
        self._lock = threading.Lock()

    def get(self, key: MemoKey) -> str | None:
        """The URL signed for this key in this window, if any."""
        return self._entries.get(key) if self.enabled else None

    def put(self, key: MemoKey, url: str) -> None:
        """Remember a URL signed in this window."""
        if self.enabled:
            with self._lock:
                if len(self._entries) >= self._maxsize:
                    self._entries.clear()
                self._entries[key] = url


# Verifying a token costs more than everything else a signed-URL request does; a browser sends
# the same token hundreds of times. A verified token is remembered (bounded, at most five
# minutes, never past its own exp), keyed by the whole token string: same string, same verdict.
TOKEN_CACHE_SIZE = 10_000
TOKEN_CACHE_SECONDS = 300


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires_at: float


class TokenCache:
    """Verified tokens → caller, bounded in size and age, safe across threads."""

    def __init__(self) -> None:
        self._entries: TTLCache[str, _Verified] = TTLCache(TOKEN_CACHE_SIZE, TOKEN_CACHE_SECONDS)
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        """The caller of a token verified before, if it has not expired since."""
        with self._lock:
            verified = self._entries.get(token)
        if verified is None or verified.expires_at <= time.time():
            return None
        return verified.principal

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        """Remember a verified token until it expires (or the cache forgets it)."""
        with self._lock:
            self._entries[token] = _Verified(principal, expires_at)
