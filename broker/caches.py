"""In-process caches, bounded in size and age and safe across threads.

- :class:`LookupCache`: an image's id → what signing a GET needs (owner, key, type, filename).
  These never change and keys are never reused, so the signing hot path can skip MongoDB.
  Entries live ``ttl`` seconds; a delete in this process drops its entry at once. What a stale
  entry in another process can do: for at most ``ttl`` seconds after a delete it lets the
  image's owner (or an admin) get a signed URL for the deleted key, which the bucket answers
  with 404 once the object is gone. Nobody else ever sees it: the owner check runs on every hit.
- :class:`SignedUrlMemo`: the URL signed for an image within one signing window.
- :class:`TokenCache`: verified bearer tokens → their caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cachetools import TTLCache

from broker.domain import Image, Principal, SigningTarget


class LookupCache:
    """id → SigningTarget, bounded in size and age, safe across threads."""

    def __init__(self, maxsize: int, ttl: float) -> None:
        self.enabled = maxsize > 0 and ttl > 0
        self._entries: TTLCache[str, SigningTarget] = TTLCache(
            maxsize=max(maxsize, 1), ttl=ttl or 1
        )
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

    def put_many(self, images: Iterable[Image]) -> None:
        """Remember the targets of freshly read images."""
        if not self.enabled:
            return
        with self._lock:
            for image in images:
                self._entries[image.id] = SigningTarget.of(image)

    def forget(self, image_id: str) -> None:
        """Drop an entry (the image is being deleted)."""
        with self._lock:
            self._entries.pop(image_id, None)


# (image id, disposition, lifetime, window start, access key id) → signed URL
MemoKey = tuple[str, str, int, int, str]


class SignedUrlMemo:
    """The URL signed for an image within one signing window, so it is signed once per window.

    Within a window the URL is fully determined by the key; the access key id is part of it so
    a credential rotation never serves a URL signed with the previous key. Entries live one
    window at most: a new window has a new key anyway.
    """

    def __init__(self, maxsize: int, window: int) -> None:
        self.enabled = maxsize > 0 and window > 0
        self._entries: TTLCache[MemoKey, str] = TTLCache(
            maxsize=max(maxsize, 1), ttl=max(window, 1)
        )
        self._lock = threading.Lock()

    def get(self, key: MemoKey) -> str | None:
        """The URL signed for this key in this window, if any."""
        if not self.enabled:
            return None
        with self._lock:
            return self._entries.get(key)

    def put(self, key: MemoKey, url: str) -> None:
        """Remember a URL signed in this window."""
        if self.enabled:
            with self._lock:
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
