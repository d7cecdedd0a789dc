"""The leased sliding-window counters on a real MongoDB-wire server (secantusdb): what a busy
caller costs in round trips, and what threads and processes sharing the counts admit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from limits import parse
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError

from broker.db.rate_limits import SharedCounts, counts_at
from broker.devservers import MongoServer, free_port
from broker.ratelimiter import RateLimiter
from broker.sliding_window import LeasedSlidingWindow, lease_cap
from tests.support.commands import Commands

CALLER = ("rate_limit_sign", "user:alice")
THREADS = 8


@pytest.fixture
def frozen_now() -> float:
    """One moment for the whole test, so every hit falls in one window however slow the run."""
    return time.time()


@pytest.fixture
def make_counts(mongo_server: MongoServer) -> Iterator[Callable[..., SharedCounts]]:
    """Counts in a fresh collection, each on a client of its own (a process of its own)."""
    name = f"rate_limits_{uuid.uuid4().hex[:12]}"
    clients: list[MongoClient[dict[str, Any]]] = []

    def make(*listeners: Commands) -> SharedCounts:
        client: MongoClient[dict[str, Any]] = MongoClient(
            mongo_server.uri, tz_aware=True, event_listeners=list(listeners)
        )
        clients.append(client)
        return SharedCounts(client["test_counts"], name)

    yield make
    clients[0]["test_counts"].drop_collection(name)
    for client in clients:
        client.close()


def hit_all(counters: list[LeasedSlidingWindow], limit: str, hits: int) -> int:
    """Send ``hits`` hits from THREADS threads, spread over ``counters``; how many got through."""
    item = parse(limit)

    def hit(n: int) -> bool:
        return counters[n % len(counters)].hit(item, *CALLER) is None

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(hit, range(hits)))


def window_count(counts: SharedCounts) -> int:
    """The caller's count in the one window the test used."""
    (document,) = counts.collection.find()
    return int(document["count"])


def test_a_busy_caller_costs_a_few_round_trips_not_one_per_hit(
    make_counts: Callable[..., SharedCounts], frozen_now: float
) -> None:
    commands = Commands()
    counter = LeasedSlidingWindow(make_counts(commands), lambda: frozen_now)
    item = parse("1200/minute")
    assert all(counter.hit(item, *CALLER) is None for _ in range(1000))
    # Leases of 1, 2, 4, 8, 16 and then 24 at a time, and at most one read of the previous
    # window (none if, this far into the window, even a full one would leave room).
    writes = commands.names().count("findAndModify")
    assert writes == 5 + -(-(1000 - 31) // lease_cap(1200))
    assert writes <= len(commands.sent) <= writes + 1 < 1000 // 20
    assert set(commands.names()) <= {"findAndModify", "find"}
    # Only $inc with an upsert: nothing a real MongoDB or secantusdb would refuse.
    updates = [command["update"] for name, command in commands.sent if name == "findAndModify"]
    assert all(set(update) == {"$inc", "$setOnInsert"} for update in updates)


def test_threads_of_one_process_admit_exactly_the_limit(
    make_counts: Callable[..., SharedCounts], frozen_now: float
) -> None:
    counts = make_counts()
    counter = LeasedSlidingWindow(counts, lambda: frozen_now)
    assert hit_all([counter], "1000/minute", 1500) == 1000
    assert window_count(counts) == 1000


@pytest.mark.parametrize("limit", [10, 1000])
def test_processes_sharing_the_counts_never_admit_more_than_the_limit(
    make_counts: Callable[..., SharedCounts], frozen_now: float, limit: int
) -> None:
    processes = 4
    counters = [LeasedSlidingWindow(make_counts(), lambda: frozen_now) for _ in range(processes)]
    admitted = hit_all(counters, f"{limit}/minute", limit * 3 // 2)
    # At most the limit; fewer by at most one lease per other process (what they held unspent
    # or were giving back when a hit was refused). A limit of 50 or fewer is exact.
    assert limit - (processes - 1) * lease_cap(limit) <= admitted <= limit
    if limit <= 50:
        assert admitted == limit
    # Every permit admitted was counted; stranded ones too, so the count may only be higher.
    assert admitted <= window_count(make_counts()) <= limit


def test_first_increments_of_a_window_racing_lose_nothing(
    make_counts: Callable[..., SharedCounts],
) -> None:
    counts = make_counts()
    expire_at = time.time() + 120
    with ThreadPoolExecutor(THREADS) as pool:
        afters = sorted(pool.map(lambda _: counts.add("w/0", 1, expire_at), range(40)))
    assert counts.count("w/0") == 40
    # Each answer is at least the count its own increment made (on MongoDB exactly that; on
    # secantusdb, which may answer a racing upsert with nothing, a later read): never less,
    # so a lease never believes more room is left than there is.
    assert all(n + 1 <= after <= 40 for n, after in enumerate(afters))


def test_an_upsert_that_collides_is_tried_once_more(
    make_counts: Callable[..., SharedCounts], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What MongoDB answers the loser of two first upserts of one _id (SERVER-14322).
    counts = make_counts()
    counts.add("w/0", 2, time.time() + 120)
    original = counts.collection.find_one_and_update
    collisions = [DuplicateKeyError("E11000 duplicate key error")]

    def colliding(*args: Any, **kwargs: Any) -> Any:
        if collisions:
            raise collisions.pop()
        return original(*args, **kwargs)

    monkeypatch.setattr(counts.collection, "find_one_and_update", colliding)
    assert counts.add("w/0", 3, time.time() + 120) == 5
    assert counts.count("w/0") == 5 and counts.count("w/none") == 0


def test_counts_on_an_unreachable_server_fall_back_to_the_process() -> None:
    counts = counts_at(f"mongodb://127.0.0.1:{free_port('127.0.0.1')}/counts", 200)
    limiter = RateLimiter(LeasedSlidingWindow(counts), "unreachable MongoDB")
    item = parse("3/minute")
    assert [limiter.hit(item, *CALLER) is None for _ in range(4)] == [True, True, True, False]
