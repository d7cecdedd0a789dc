"""The leased sliding-window counter on an in-memory store and a clock the test moves: the
estimate, the leases and their sizes, give-backs, local refusals, Retry-After and rollover."""

from __future__ import annotations

import math
import threading

import pytest
from limits import RateLimitItem, parse

from broker.ratelimiter import RateLimiter, rate_limiter
from broker.settings import load_settings
from broker.sliding_window import (
    SWEEP_AFTER_KEYS,
    InProcessCounts,
    LeasedSlidingWindow,
    Window,
    lease_cap,
)

PERIOD = 60
# A window (windows start at multiples of the period) and the moment half-way through it.
START = 16_667 * PERIOD
HALFWAY = START + PERIOD / 2
CALLER = ("rate_limit_sign", "user:alice")


class Clock:
    """A wall clock the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counts:
    """The shared store in memory, recording every call (each one a round trip)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.adds: list[int] = []
        self.reads = 0
        # Called before each add: another process's write landing first.
        self.before_add: list[int] = []

    def add(self, key: str, amount: int, expire_at: float) -> int:
        """Add to the key's count; the count after."""
        if self.before_add:
            self.counts[key] = self.counts.get(key, 0) + self.before_add.pop(0)
        self.adds.append(amount)
        self.counts[key] = self.counts.get(key, 0) + amount
        return self.counts[key]

    def count(self, key: str) -> int:
        """The key's count."""
        self.reads += 1
        return self.counts.get(key, 0)

    @property
    def round_trips(self) -> int:
        """Every call so far."""
        return self.reads + len(self.adds)


def window_key(item: RateLimitItem, start: int) -> str:
    """The store key of the caller's window starting at ``start``."""
    return f"{item.key_for(*CALLER)}/{start}"


@pytest.fixture
def clock() -> Clock:
    """Half-way through a window."""
    return Clock(HALFWAY)


@pytest.fixture
def store() -> Counts:
    """An empty store."""
    return Counts()


@pytest.fixture
def counter(store: Counts, clock: Clock) -> LeasedSlidingWindow:
    """The counter under test on ``store`` and ``clock``."""
    return LeasedSlidingWindow(store, clock)


def admitted(counter: LeasedSlidingWindow, item: RateLimitItem, hits: int) -> int:
    """How many of ``hits`` hits the counter admitted."""
    return sum(counter.hit(item, *CALLER) is None for _ in range(hits))


def test_the_window_is_where_the_clock_says() -> None:
    window = Window.at(parse("100/minute"), HALFWAY)
    assert window.start == START and window.start % PERIOD == 0
    assert window.now - window.start == 30
    assert window.expire_at == START + 2 * PERIOD


def test_the_estimate_weights_the_previous_window_by_what_is_left_of_this_one() -> None:
    window = Window(limit=100, period=60, start=0, now=15.0)
    assert window.previous_share(80) == 60.0  # three quarters of the window still to come
    assert window.room(previous=80, current=30) == 10
    assert window.room(previous=80, current=45) == 0  # never negative
    assert Window(limit=100, period=60, start=0, now=0.0).room(100, 0) == 0


def test_a_fresh_caller_gets_exactly_the_limit(counter: LeasedSlidingWindow, store: Counts) -> None:
    item = parse("1000/minute")
    assert admitted(counter, item, 1500) == 1000
    assert store.counts[window_key(item, START)] == 1000


def test_the_previous_window_counts_by_its_share(
    counter: LeasedSlidingWindow, store: Counts
) -> None:
    item = parse("1000/minute")
    store.counts[window_key(item, START - PERIOD)] = 600  # half of it is still in the estimate
    assert admitted(counter, item, 1500) == 700
    assert store.reads == 1  # read once, then kept


def test_leases_double_up_to_a_fiftieth_of_the_limit(
    counter: LeasedSlidingWindow, store: Counts
) -> None:
    item = parse("1000/minute")
    assert lease_cap(1000) == 20
    admitted(counter, item, 200)
    assert store.adds[:7] == [1, 2, 4, 8, 16, 20, 20]
    # 200 hits: 14 leases, not 200 writes. Half-way through the window even a full previous
    # window leaves room for them, so its count was not worth a read.
    assert store.round_trips == 14 and store.reads == 0


def test_the_previous_window_is_read_when_it_could_refuse(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("1000/minute")
    clock.now = START + 3  # a full previous window would leave room for 50
    assert admitted(counter, item, 40) == 40
    assert store.reads == 1  # once a lease of 16 would not have fit under a full one
    assert admitted(counter, item, 2000) == 1000 - 40
    assert store.reads == 1


def test_leases_shrink_near_the_limit_and_never_overshoot(
    counter: LeasedSlidingWindow, store: Counts
) -> None:
    item = parse("1000/minute")
    assert admitted(counter, item, 1000) == 1000
    # The last leases are a quarter of the room left at most, down to one.
    assert store.adds[-4:] == [1, 1, 1, 1]
    assert all(amount > 0 for amount in store.adds)  # alone, nothing had to be given back
    assert sum(store.adds) == 1000


@pytest.mark.parametrize("limit", [1, 2, 10, 50, 99])
def test_a_limit_up_to_fifty_is_counted_one_hit_at_a_time(
    counter: LeasedSlidingWindow, store: Counts, limit: int
) -> None:
    item = parse(f"{limit}/minute")
    assert admitted(counter, item, limit + 5) == limit
    if limit <= 50:
        assert set(store.adds) == {1}
    else:
        assert max(store.adds) == lease_cap(limit) == 1


def test_an_overflow_is_given_back_and_what_fits_kept(
    counter: LeasedSlidingWindow, store: Counts
) -> None:
    item = parse("1000/minute")
    admitted(counter, item, 31)  # leases 1, 2, 4, 8, 16: 31 taken, all spent
    assert store.adds == [1, 2, 4, 8, 16]
    # Other processes took 960 meanwhile: of the next lease of 20 only 9 fit.
    store.before_add = [960]
    assert admitted(counter, item, 20) == 9
    assert store.adds[5:] == [20, -11]
    assert store.counts[window_key(item, START)] == 1000


def test_a_full_window_refuses_locally_with_the_time_to_wait(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("10/minute")
    assert admitted(counter, item, 10) == 10
    trips = store.round_trips
    # 10 this window: the next window admits one once 9 of them are left in its estimate, a
    # tenth of the way in: 30 s to the end of this window plus 6 s.
    assert counter.hit(item, *CALLER) == 36
    assert admitted(counter, item, 50) == 0
    assert store.round_trips == trips  # refused without asking the store
    clock.now += 35
    assert counter.hit(item, *CALLER) == 1
    clock.now += 1
    assert counter.hit(item, *CALLER) is None


def test_the_previous_windows_share_decays_into_room(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("10/minute")
    store.counts[window_key(item, START - PERIOD)] = 10
    clock.now = START + 6  # 9 of the previous window are in the estimate
    assert counter.hit(item, *CALLER) is None
    # 9 + 1: no room. 8 of the previous may be left 12 s into the window: 6 s from now.
    assert counter.hit(item, *CALLER) == 6
    assert store.adds == [1] and store.reads == 1  # refused without a write
    clock.now += 5
    assert counter.hit(item, *CALLER) == 1
    clock.now += 1
    assert counter.hit(item, *CALLER) is None
    assert store.adds == [1, 1] and store.reads == 1


def test_a_window_refused_by_others_writes_costs_one_give_back(
    counter: LeasedSlidingWindow, store: Counts
) -> None:
    item = parse("10/minute")
    store.before_add = [10]  # others filled the window before this process's first lease
    assert counter.hit(item, *CALLER) == 30 + PERIOD * 1 // 10
    assert store.adds == [1, -1]
    trips = store.round_trips
    assert counter.hit(item, *CALLER) is not None
    assert store.round_trips == trips


def test_unspent_permits_die_with_their_window(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("1000/minute")
    admitted(counter, item, 40)  # leases 1, 2, 4, 8, 16, 20: 51 taken, 11 unspent
    assert store.counts[window_key(item, START)] == 51
    clock.now = START + PERIOD  # the next window's first moment
    assert counter.hit(item, *CALLER) is None
    # The new window read the old one's count (51, unspent permits included: conservative:
    # at its first moment a full previous window would leave no room) and took a new lease:
    # the caller kept hitting, so at the size reached (20, within half of the 40 spent).
    assert store.adds[-1] == 20 and store.reads == 1
    assert store.counts[window_key(item, START + PERIOD)] == 20
    # 51 weighted by the whole window is in the estimate: 1000 - 51 fit, one already taken.
    assert admitted(counter, item, 1000) == 1000 - 51 - 1


def test_a_busy_callers_lease_carries_into_the_next_window(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("1000/minute")
    admitted(counter, item, 200)  # leases 1, 2, 4, 8, 16, then 20s
    clock.now += PERIOD
    leases = len(store.adds)
    assert admitted(counter, item, 200) == 200
    # No ramp again: the window's leases are all at the cap.
    assert store.adds[leases:] == [lease_cap(1000)] * 10


def test_the_carried_lease_is_at_most_half_the_hits_spent(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("1000/minute")
    admitted(counter, item, 10)  # leases 1, 2, 4, 8: the next would be 16, 10 spent
    assert store.adds == [1, 2, 4, 8]
    clock.now += PERIOD
    assert counter.hit(item, *CALLER) is None
    assert store.adds[-1] == 5


def test_a_caller_who_went_quiet_starts_again_at_one(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("1000/minute")
    admitted(counter, item, 200)
    clock.now += 2 * PERIOD  # a whole window without a hit
    leases = len(store.adds)
    admitted(counter, item, 7)
    assert store.adds[leases:] == [1, 2, 4]


def test_carried_leases_keep_processes_within_the_limit(store: Counts, clock: Clock) -> None:
    item = parse("1000/minute")
    processes = [LeasedSlidingWindow(store, clock) for _ in range(3)]
    for _ in range(100):  # each busy through the window: 300 hits, leases at the cap
        for process in processes:
            assert process.hit(item, *CALLER) is None
    clock.now += PERIOD  # half-way through the next window: half the previous count is left
    previous = store.counts[window_key(item, START)]
    room = math.floor(1000 - previous / 2)
    first = len(store.adds)
    admitted_now = 0
    for _ in range(1000):
        for process in processes:
            admitted_now += process.hit(item, *CALLER) is None
    assert store.adds[first] == lease_cap(1000)  # the new window leased at the carried size
    # Never more than the estimate allows; fewer by at most a lease per other process.
    assert room - (len(processes) - 1) * lease_cap(1000) <= admitted_now <= room


def test_a_busy_caller_costs_a_write_per_lease_cap_in_the_steady_state(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("1200/minute")
    cap = lease_cap(1200)
    clock.now = START
    windows = 10
    for _ in range(windows * 1000):  # 1000 hits a minute, evenly, for ten minutes
        assert counter.hit(item, *CALLER) is None
        clock.now += PERIOD / 1000
    # The first window ramps up (1, 2, 4, 8, 16: 31 hits in 5 writes), every later one stays
    # at the cap; the previous window is read at most once a window.
    ramp = 5 + math.ceil((1000 - 31) / cap)
    assert len(store.adds) <= ramp + (windows - 1) * math.ceil(1000 / cap)
    assert store.reads <= windows
    assert all(amount > 0 for amount in store.adds)  # nothing was given back


def test_each_caller_and_each_limit_counts_apart(
    counter: LeasedSlidingWindow, store: Counts
) -> None:
    item = parse("2/minute")
    assert admitted(counter, item, 3) == 2
    assert counter.hit(item, "rate_limit_sign", "user:bob") is None
    assert counter.hit(parse("2/hour"), *CALLER) is None


def test_keys_of_ended_windows_are_forgotten(
    counter: LeasedSlidingWindow, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("broker.sliding_window.SWEEP_AFTER_KEYS", 4)
    monkeypatch.setattr(counter, "_sweep_at", 4)
    item = parse("5/minute")
    for n in range(4):
        counter.hit(item, "rate_limit_sign", f"user:{n}")
    clock.now += PERIOD
    counter.hit(item, "rate_limit_sign", "user:new")
    assert len(counter._keys) == 1


class Unreachable:
    """A store whose server is down."""

    def add(self, key: str, amount: int, expire_at: float) -> int:
        """Fail as a client does."""
        raise ConnectionError("counter store unreachable")

    def count(self, key: str) -> int:
        """Fail as a client does."""
        raise ConnectionError("counter store unreachable")


def test_a_store_outage_counts_in_the_process(clock: Clock) -> None:
    limiter = RateLimiter(LeasedSlidingWindow(Unreachable(), clock), "test store")
    item = parse("2/minute")
    assert [limiter.hit(item, *CALLER) is None for _ in range(3)] == [True, True, False]


def test_a_caller_seen_once_a_window_costs_one_round_trip_there(
    counter: LeasedSlidingWindow, store: Counts, clock: Clock
) -> None:
    item = parse("120/minute")
    for _ in range(5):
        assert counter.hit(item, *CALLER) is None
        clock.now += PERIOD
    assert store.adds == [1] * 5 and store.reads == 0


# ---- in this process's memory (memory://, and the stand-in during an outage) -------------------


def test_in_process_counts_add_read_and_expire(clock: Clock) -> None:
    counts = InProcessCounts(clock)
    assert counts.count("k/1") == 0
    assert counts.add("k/1", 3, clock.now + 10) == 3
    assert counts.add("k/1", -1, clock.now + 10) == 2
    assert counts.count("k/1") == 2
    clock.now += 10
    assert counts.count("k/1") == 0  # expired: as if never counted
    assert counts.add("k/1", 1, clock.now + 10) == 1


def test_in_process_counts_forget_expired_keys_as_they_grow(clock: Clock) -> None:
    counts = InProcessCounts(clock)
    for n in range(SWEEP_AFTER_KEYS - 1):
        counts.add(f"old/{n}", 1, clock.now + 1)
    clock.now += 2
    counts.add("new/0", 1, clock.now + 1)  # the table reached its bound: the expired go
    assert len(counts) == 1


def test_memory_counters_admit_exactly_the_limit_across_threads() -> None:
    memory = {"BROKER_RATE_LIMIT_STORAGE_URI": "memory://", "BROKER_ENV": "test"}
    limiter = rate_limiter(load_settings(memory), None)  # memory:// needs no database
    item = parse("1000/minute")
    results: list[bool] = []
    lock = threading.Lock()

    def caller() -> None:
        mine = [limiter.hit(item, *CALLER) is None for _ in range(250)]
        with lock:
            results.extend(mine)

    callers = [threading.Thread(target=caller) for _ in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert sum(results) == 1000 and len(results) == 1500
