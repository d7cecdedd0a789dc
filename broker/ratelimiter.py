"""The counters behind the rate limits: where they live, how they count, what happens when their
store is down.

The counters live where ``BROKER_RATE_LIMIT_STORAGE_URI`` says:

- unset (the default): the broker's own MongoDB database (``rate_limits``), shared by every
  worker of every host, so a limit is the limit however many processes serve. Counting there is
  a sliding window whose permits each process takes in leases
  (:class:`~broker.sliding_window.LeasedSlidingWindow`): a busy caller costs a round trip every
  few dozen requests rather than one per request, and the processes together never admit more
  than the limit;
- ``mongodb://…``: the same on another MongoDB;
- ``redis://…`` (and ``limits``' other Redis schemes): ``limits``' moving window in Redis (one
  round trip per request), which needs the ``redis`` package;
- ``memory://``: the same sliding window in each process's memory (no round trip, no lease to
  share), so N workers on M hosts let a caller through N × M times.

If the shared store fails, requests are served, counted per process in memory (the same sliding
window), and the store is tried again after :data:`RETRY_SHARED_AFTER` seconds: an outage of the
counters neither refuses everyone nor makes every request wait for the store's timeout, and it
is logged once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import urlsplit

from limits import RateLimitItem
from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from broker.db.rate_limits import RATE_LIMITS, SharedCounts, counts_at
from broker.settings import ConfigError, Settings
from broker.sliding_window import InProcessCounts, LeasedSlidingWindow

if TYPE_CHECKING:
    from broker.db import Repositories

log = logging.getLogger(__name__)

# Seconds the shared store is left alone after it failed (requests count in memory meanwhile).
RETRY_SHARED_AFTER = 10.0
MONGODB_SCHEMES = ("mongodb", "mongodb+srv")


class Counter(Protocol):
    """A way of counting hits against a limit."""

    def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one hit; None when it is within the limit, else the seconds to wait."""
        ...  # pragma: no cover


class MovingWindow:
    """``limits``' moving window on one of its shared storages (Redis)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._strategy = MovingWindowRateLimiter(storage)

    def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one hit; None when it is within the limit, else the seconds to wait."""
        if self._strategy.hit(item, *identifiers):
            return None
        reset_at = self._strategy.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset_at - time.time()))


class RateLimiter:
    """Per-caller counters in one store, with a per-process stand-in while the store is down."""

    def __init__(self, counter: Counter, description: str, *, shared: bool = True) -> None:
        self.description = description
        self._store = counter
        self._local = LeasedSlidingWindow(InProcessCounts()) if shared else counter
        self._down_until = 0.0
        self._lock = threading.Lock()

    def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one hit; None when it is within the limit, else the seconds to wait."""
        if self._down_until and time.monotonic() < self._down_until:
            return self._local.hit(item, *identifiers)
        try:
            waited = self._store.hit(item, *identifiers)
        except Exception as e:  # whatever the store's client raises: serve, count locally
            self._store_failed(e)
            return self._local.hit(item, *identifiers)
        if self._down_until:
            with self._lock:
                self._down_until = 0.0
            log.info("rate limit counters reachable again (%s)", self.description)
        return waited

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
        counts = SharedCounts(db.database)
        description = f"MongoDB {db.database.name}.{RATE_LIMITS}"
        return RateLimiter(LeasedSlidingWindow(counts), description)
    scheme = urlsplit(uri).scheme
    if scheme == "memory":
        return RateLimiter(LeasedSlidingWindow(InProcessCounts()), "memory://", shared=False)
    if scheme in MONGODB_SCHEMES:
        counts = counts_at(uri, settings.mongodb_timeout_ms)
        return RateLimiter(LeasedSlidingWindow(counts), "MongoDB (own URI)")
    try:
        storage = storage_from_string(uri)
    except ConfigurationError as e:
        # e.g. redis:// without the redis package: say so at start-up, not at the first request.
        raise ConfigError(f"BROKER_RATE_LIMIT_STORAGE_URI: {e}") from e
    # The settings' rule admits only synchronous stores.
    return RateLimiter(MovingWindow(cast(Storage, storage)), f"{scheme}://")
