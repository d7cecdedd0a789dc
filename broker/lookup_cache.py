"""A bounded, short-lived in-process cache of what signing a GET needs to know about an image.

An image's id → (owner, key, content type, filename) never changes and keys are never reused, so
the signing hot path can skip MongoDB. Entries live ``ttl`` seconds; a delete in this process
drops its entry at once. What a stale entry in another process can do: for at most ``ttl``
seconds after a delete it lets the image's owner (or an admin) get a signed URL for the deleted
key, which the bucket answers with 404 once the object is gone. Nobody else ever sees it: the
owner check runs on every hit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

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
