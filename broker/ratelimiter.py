"""The counters behind the rate limits: where they live, how they count, what happens when their
store is down.

Counting is a moving window (``limits``' ``MovingWindowRateLimiter``): at most N hits in any
period, so a burst at a window's edge cannot double the rate. The counters live where
``BROKER_RATE_LIMIT_STORAGE_URI`` says:

- unset (the default): the broker's own MongoDB database (``rate_limits``), shared by every
  worker of every host, so a limit is the limit however many processes serve;
- ``mongodb://…``: another MongoDB; ``redis://…`` (and ``limits``' other Redis schemes): Redis,
  which needs the ``redis`` package;
- ``memory://``: in each process, so N workers on M hosts let a caller through N × M times.

If the shared store fails, requests are served, counted per process in memory, and the store is
tried again after :data:`RETRY_SHARED_AFTER` seconds: an outage of the counters neither refuses
everyone nor makes every request wait for the store's timeout, and it is logged once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from limits import RateLimitItem
from limits.errors import ConfigurationError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from broker.db.rate_limits import SharedCounters, counters_at
from broker.settings import ConfigError, Settings

if TYPE_CHECKING:
    from broker.db import Repositories

log = logging.getLogger(__name__)

# Seconds the shared store is left alone after it failed (requests count in memory meanwhile).
RETRY_SHARED_AFTER = 10.0
MONGODB_SCHEMES = ("mongodb", "mongodb+srv")


class RateLimiter:
    """Per-caller moving-window counters in one store, with a per-process stand-in while the
    store is down."""

    def __init__(self, storage: Storage, description: str) -> None:
        self.description = description
        self._store = MovingWindowRateLimiter(storage)
        shared = not isinstance(storage, MemoryStorage)
        self._local = MovingWindowRateLimiter(MemoryStorage()) if shared else self._store
        self._down_until = 0.0
        self._lock = threading.Lock()

    def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one hit; None when it is within the limit, else the seconds to wait."""
        if self._down_until and time.monotonic() < self._down_until:
            return self._hit(self._local, item, identifiers)
        try:
            waited = self._hit(self._store, item, identifiers)
        except Exception as e:  # whatever the store's client raises: serve, count locally
            self._store_failed(e)
            return self._hit(self._local, item, identifiers)
        if self._down_until:
            with self._lock:
                self._down_until = 0.0
            log.info("rate limit counters reachable again (%s)", self.description)
        return waited

    @staticmethod
    def _hit(
        strategy: MovingWindowRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]
    ) -> int | None:
        if strategy.hit(item, *identifiers):
            return None
        reset_at = strategy.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _store_failed(self, error: Exception) -> None:
        with self._lock:
            first = not self._down_until
            self._down_until = time.monotonic() + RETRY_SHARED_AFTER
        if first:
            log.warning(
                "rate limit counters unreachable (%s): counting in this process, retrying in "
                "%.0f s: %s",
                self.description,
                RETRY_SHARED_AFTER,
                error,
            )


def rate_limiter(settings: Settings, db: Repositories) -> RateLimiter:
    """The rate limiter ``BROKER_RATE_LIMIT_STORAGE_URI`` asks for; by default on ``db``."""
    uri = settings.rate_limit_storage_uri
    if not uri:
        counters = SharedCounters(db.database)
        return RateLimiter(counters, f"MongoDB {db.database.name}.{counters.collection_name}")
    scheme = urlsplit(uri).scheme
    if scheme in MONGODB_SCHEMES:
        return RateLimiter(counters_at(uri, settings.mongodb_timeout_ms), "MongoDB (own URI)")
    try:
        storage = storage_from_string(uri)
    except ConfigurationError as e:
        # e.g. redis:// without the redis package: say so at start-up, not at the first request.
        raise ConfigError(f"BROKER_RATE_LIMIT_STORAGE_URI: {e}") from e
    # The settings' rule admits only synchronous stores.
    return RateLimiter(cast(Storage, storage), f"{scheme}://")
