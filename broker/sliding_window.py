"""Shared rate-limit counting that costs a fraction of a round trip per request: a sliding-window
counter whose permits each process takes from the shared store in leases.

**The estimate.** Time is cut into fixed windows of the limit's period (``floor(t / period)``, on
the wall clock, so every host cuts the same windows). The store keeps one count per (limit,
caller) and window. At time ``t``, ``elapsed`` seconds into the current window, the caller's rate
is estimated as ``previous × (1 - elapsed / period) + current``: the classic approximation of a
moving window, which assumes the previous window's hits were spread evenly, so a burst at a
window's edge cannot double the rate. A hit is admitted only while the estimate, counting it,
stays within the limit.

**Leases.** A process does not write once per hit. When it has no permits left for a key it takes
``k`` at once (``count += k`` in the store, one round trip) and, if the estimate with the new count
passes the limit, gives the overflow back (``count -= excess``) and keeps what fits (maybe
nothing: refused). Its permits are then spent locally, one per hit, under the key's lock, and
die with their window (they stay counted: a process never claims more than the store granted).
The lease size adapts per key: it doubles with each further lease while the caller keeps
hitting, capped at ``max(1, limit // 50)`` (so a limit of 50 or fewer is counted one hit per
round trip and strands no permit) and at a quarter of the headroom last seen (``limit -
estimate``), so near the limit leases shrink and few permits can be left stranded. A window's
first lease is 1, unless the caller kept hitting through the window just ended: then the lease
carries on at the size it reached there, but at most half the hits this process admitted there
(a long-lived process serving a busy caller stays at the cap instead of ramping up again each
window; a caller seen once a window still leases one; one who went quiet for a window starts
again at 1). Carrying changes no bound: a lease is still at most the cap.
The previous window's count is read at most once per window per key per process, and only when
it matters: no window's admitted hits exceed the limit, so while the estimate taking the
previous window as full leaves room for the lease wanted, the real count cannot change the
decision (a caller seen once in a window costs one round trip there, not two). When the
estimate last seen already leaves no room (its previous part only decays, its current part can
only grow), the hit is refused locally, without a round trip.

**What is guaranteed.** The shared count of a window is the sum of every permit every process
kept, plus overflow on its way back; a lease keeps only what fits under the limit *above
everything already counted*, so across all processes the admitted hits never exceed the limit
(nor the estimate the limit). The price is under-admission, bounded: a hit can be refused while
other processes hold unspent permits or are returning an overflow, each at most one lease, so at
most ``(processes - 1) × cap`` hits of a window fewer than an exact counter; and permits left
unspent at a window's end (at most ``processes × cap``) are counted in the next window's
estimate with a weight that decays to nothing over it. With one process the count is exact; so
it is with leases of one in a window whose estimate has no previous share (a refusal then
means the window is full).

**Cost.** A caller making ``n`` limited requests in a window through one process costs about
``n / cap`` round trips instead of ``n`` once it is busy (plus ``log2(cap)`` in the window it
starts, and, when it matters, one read of the previous window's count); near the limit, leases
of one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from limits import RateLimitItem

# A lease is at most this fraction of the limit (and at least 1): the bound on stranded permits.
LEASE_FRACTION = 50
# ... and at most this fraction of the headroom last seen, so leases shrink near the limit.
HEADROOM_FRACTION = 4
# A window's first lease is at most the hits the caller spent here in the window just ended
# divided by this (1 for a caller who went quiet): a caller who keeps hitting keeps its size.
CARRY_SHARE = 2
# Absorbs float rounding in the estimate (a hit that fits exactly must not be refused).
EPSILON = 1e-9
# Keys whose window ended are dropped once the table has grown past this (then twice its size).
SWEEP_AFTER_KEYS = 1024


class WindowCounts(Protocol):
    """The shared store: one count per window key (``limit key/window start``)."""

    def add(self, key: str, amount: int, expire_at: float) -> int:
        """Add ``amount`` (negative: give back) to the key's count, creating it; the count after."""
        ...  # pragma: no cover

    def count(self, key: str) -> int:
        """The key's count, 0 when it has none."""
        ...  # pragma: no cover


def lease_cap(limit: int) -> int:
    """The largest lease a process takes of ``limit`` (1 for a limit of 50 or fewer)."""
    return max(1, limit // LEASE_FRACTION)


def lease_size(lease: int, limit: int, headroom: int) -> int:
    """The next lease: ``lease`` within the cap and a share of the headroom, at least 1."""
    return max(1, min(lease, lease_cap(limit), headroom // HEADROOM_FRACTION))


@dataclass(frozen=True)
class Window:
    """One limit's window at one moment: what the estimate and the waits are computed from."""

    limit: int
    period: int
    start: int
    now: float

    @classmethod
    def at(cls, item: RateLimitItem, now: float) -> Window:
        """The window of ``item`` that ``now`` falls in."""
        period = item.get_expiry()
        return cls(item.amount, period, int(now // period) * period, now)

    @property
    def key_suffix(self) -> str:
        """The window's part of its counter's key."""
        return f"/{self.start}"

    @property
    def previous_suffix(self) -> str:
        """The previous window's part of its counter's key."""
        return f"/{self.start - self.period}"

    @property
    def expire_at(self) -> float:
        """When the window's counter may go: after the next window, which reads it."""
        return float(self.start + 2 * self.period)

    def previous_share(self, previous: int) -> float:
        """The part of the previous window's count still in the estimate now."""
        return previous * (1 - (self.now - self.start) / self.period)

    def room(self, previous: int, current: int) -> int:
        """How many more hits fit now under the limit (never negative)."""
        return max(0, math.floor(self.limit - self.previous_share(previous) - current + EPSILON))

    def retry_after(self, previous: int, current: int) -> int:
        """Whole seconds until one more hit fits, if nobody hits meanwhile (at least 1)."""
        room = self.limit - 1 - current
        if room >= 0 and previous > 0:
            # The previous window's share decays enough within this one.
            fits_at = self.start + self.period * (1 - room / previous)
        else:
            # This window's count must decay in the next one: limit - 1 of it may remain.
            fits_at = self.start + self.period * (2 - (self.limit - 1) / max(current, 1))
        return max(1, math.ceil(fits_at - self.now - EPSILON))


@dataclass
class _KeyState:
    """What one process knows of one key's current window."""

    window: int = -1
    period: int = 0
    previous: int | None = None  # the previous window's count, read at most once
    seen: int = 0  # the current window's count as last seen (own permits included)
    permits: int = 0  # leased here, not yet spent
    kept: int = 0  # permits leased here in this window, spent or not
    lease: int = 1  # the size of the next lease
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, window: Window) -> None:
        """Start ``window``: the old one's permits die; the lease carries on (see the module)."""
        just_ended = self.window == window.start - window.period
        spent = self.kept - self.permits if just_ended else 0
        self.lease = max(1, min(self.lease, spent // CARRY_SHARE))
        self.window, self.period = window.start, window.period
        self.previous, self.seen, self.permits, self.kept = None, 0, 0, 0


class LeasedSlidingWindow:
    """Per-caller sliding-window counters in a shared store, taken in leases (see the module)."""

    def __init__(self, store: WindowCounts, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._keys_lock = threading.Lock()
        self._sweep_at = SWEEP_AFTER_KEYS

    def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one hit; None when it is within the limit, else the seconds to wait."""
        key = item.key_for(*identifiers)
        state = self._state(key)
        # One lock per key: threads hitting one key wait for one lease instead of each taking
        # their own; other keys go on meanwhile.
        with state.lock:
            window = Window.at(item, self._clock())
            if state.window != window.start:
                state.enter(window)
            if state.permits:
                state.permits -= 1
                return None
            if state.previous is None and self._previous_matters(state, window):
                self._read_previous(state, key, window)
            if state.previous is not None and not window.room(state.previous, state.seen):
                return window.retry_after(state.previous, state.seen)
            return self._lease(state, key, window)

    @staticmethod
    def _previous_matters(state: _KeyState, window: Window) -> bool:
        # No window counts more than the limit, so while the estimate with a full previous
        # window leaves room for the lease wanted, its real count cannot change the decision.
        wanted = min(state.lease, lease_cap(window.limit))
        room = window.room(window.limit, state.seen)
        return not room or lease_size(state.lease, window.limit, room) < wanted

    def _read_previous(self, state: _KeyState, key: str, window: Window) -> int:
        state.previous = self.store.count(key + window.previous_suffix)
        return state.previous

    def _lease(self, state: _KeyState, key: str, window: Window) -> int | None:
        previous = window.limit if state.previous is None else state.previous  # see above
        size = lease_size(state.lease, window.limit, window.room(previous, state.seen))
        counter = key + window.key_suffix
        after = self.store.add(counter, size, window.expire_at)
        before = after - size
        kept = min(size, window.room(previous, before))
        if kept < size and state.previous is None:
            # The bound was too strict (or others wrote meanwhile): the real count decides.
            previous = self._read_previous(state, key, window)
            kept = min(size, window.room(previous, before))
        if kept < size:
            self.store.add(counter, kept - size, window.expire_at)
        state.seen = before + kept
        state.kept += kept
        state.lease = min(lease_cap(window.limit), 2 * size)
        if not kept:
            return window.retry_after(previous, state.seen)
        state.permits = kept - 1
        return None

    def _state(self, key: str) -> _KeyState:
        with self._keys_lock:
            state = self._keys.get(key)
            if state is None:
                if len(self._keys) >= self._sweep_at:
                    self._sweep(self._clock())
                state = self._keys[key] = _KeyState()
            return state

    def _sweep(self, now: float) -> None:
        # A key whose window ended knows nothing the next hit could use (it starts afresh); one
        # just made has no window yet and its hit is on its way.
        self._keys = {
            key: state
            for key, state in self._keys.items()
            if state.window < 0 or state.window + state.period > now
        }
        self._sweep_at = max(SWEEP_AFTER_KEYS, 2 * len(self._keys))


class InProcessCounts:
    """Window counts in this process's memory: ``memory://``, and the stand-in while the shared
    store is down. One process, so leases there are exact; a dict, so a hit costs no thread or
    round trip (``limits``' in-memory storage starts a timer thread every few hits)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_at = SWEEP_AFTER_KEYS

    def add(self, key: str, amount: int, expire_at: float) -> int:
        """Add ``amount`` to the key's count, creating it; the count after."""
        with self._lock:
            count = self._live(key) + amount
            self._counts[key] = (count, expire_at)
            if len(self._counts) >= self._sweep_at:
                now = self._clock()
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
                self._sweep_at = max(SWEEP_AFTER_KEYS, 2 * len(self._counts))
            return count

    def count(self, key: str) -> int:
        """The key's count, 0 when it has none (or it expired)."""
        with self._lock:
            return self._live(key)

    def _live(self, key: str) -> int:
        entry = self._counts.get(key)
        return entry[0] if entry is not None and entry[1] > self._clock() else 0

    def __len__(self) -> int:
        return len(self._counts)
