"""What the test database (``secantusdb``) spends per operation, by the size of its collection.

Two of issue 13's endpoint targets are bound by the database: GET signed-url with the default
shared rate-limit counters (a findAndModify per lease) and ``GET /images?limit=100&sign=1`` (one
hinted list query per page). Each is measured here as the broker sends it, by the broker's own
code (``SharedCounts.add`` and ``SharedCounts.count``, ``ImageRepository.page``), on a fresh
``secantusdb`` server of its own, with the collection it works on holding only
what the operation touches, then what the endpoint runs had, then more. The figure is the
server process's CPU per operation (from /proc, as the endpoint runs count it), the median of a
few samples. What it shows: the test server's cost follows the collection's size, not what the
operation reads (a real MongoDB answers both from an index, at any size). Last, the lease again
after thousands of other writes, made first as the benchmarks' brokers make them (without
retryable writes), then as retryable writes (pymongo's default): the test server's cost per
retryable write grows with the retryable writes it has taken (see ``bench/services.py``).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from limits import RateLimitItem, parse
from pymongo import MongoClient
from pymongo.database import Database

from bench.load import process_cpu_seconds
from bench.services import bench_mongodb_uri, image_documents, mongo_server
from broker.db.images import _IMAGE_FIELDS, ImageRepository
from broker.db.indexes import create_indexes, list_index_keys
from broker.db.rate_limits import RATE_LIMITS, SharedCounts
from broker.limits import SIGN
from broker.pagination import SORTS
from broker.sliding_window import Window, lease_cap
from broker.variants.spec import parse_variants

DATABASE = "bench_dbcost"
# The larger sizes: enough documents for a scan to stand out from the noise, few enough to seed
# and measure in seconds.
LARGE_RATE_LIMITS = 5_000
LARGE_IMAGES = 6_000
# Each sample runs one operation for this long (at least twice) and divides the server's CPU by
# the operations: the clock ticks are 10 ms, so a sample must span many of them.
SAMPLE_SECONDS = 0.3
SAMPLES = 5
# The bench's callers of the signing limit: each has a counter in its current window and one in
# its previous (what the collection holds when the endpoint runs have not left a count).
WINDOWS_PER_CALLER = 2
CALLER = "dbcost-caller"
LISTER = "dbcost-lister"
LIBRARY = "dbcost-library"
SORT = "newest"
# The variants the broker shows (its default configuration): what a listing reads does not
# depend on them, but the repository is built as the broker builds it.
VARIANT_NAMES = tuple(spec.name for spec in parse_variants("thumb:320x320,medium:1280x1280"))
# Writes the server takes before the lease is measured again: the test server's cap on the
# retryable-write replies it keeps (for 30 minutes), which a benchmark run reaches.
EARLIER_WRITES = 10_000


def server_cpu_ms(operation: Callable[[], object], database_pid: int) -> float:
    """The database process's CPU ms per ``operation``: the median of ``SAMPLES`` samples."""
    operation()  # the first call may build a plan or warm a cache: not the steady state
    per_operation = []
    for _ in range(SAMPLES):
        count, started, before = 0, time.perf_counter(), process_cpu_seconds(database_pid)
        while count < 2 or time.perf_counter() - started < SAMPLE_SECONDS:
            operation()
            count += 1
        per_operation.append((process_cpu_seconds(database_pid) - before) * 1000 / count)
    return round(statistics.median(per_operation), 3)


@contextmanager
def own_database(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    """This step's database on its own fresh server (wiped when the step ends), with the
    broker's indexes."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_uri, tz_aware=True, socketTimeoutMS=600_000
    )
    try:
        database = client[DATABASE]
        create_indexes(database)
        yield database
    finally:
        client.close()


def measure(
    bench_uri: str, work_dir: Path, sign_limit: int, page_size: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every operation at each size of its collection, on a fresh server of its own (the sizes
    the endpoint runs had read from the bench's at ``bench_uri``); the figures as the report
    reads them."""
    bench: MongoClient[dict[str, Any]] = MongoClient(bench_uri)
    try:
        # What the endpoint runs had: the bench database's collections as they are now.
        bench_counters = bench["bench"][RATE_LIMITS].count_documents({})
        bench_images = bench["bench"]["images"].count_documents({})
        callers = len(bench["bench"]["images"].distinct("owner"))
    finally:
        bench.close()
    if not bench_counters:  # the endpoints did not run: their callers' two windows each
        bench_counters = WINDOWS_PER_CALLER * callers
    rows: list[dict[str, Any]] = []
    # A server of its own: the bench's has served half an hour of load by now (its lease cost
    # one run measured at 1 document was three times the endpoint runs' average), and only the
    # collection's size may differ between the rows.
    with mongo_server(work_dir / "mongo-dbcost") as server:
        database_pid = server.process.pid if server.process is not None else -1
        # As the benchmarks' brokers connect: without retryable writes (bench/services.py).
        with own_database(bench_mongodb_uri(server.uri)) as database:
            rows += _rate_limit_rows(database, database_pid, sign_limit, bench_counters, log)
            rows += _page_rows(database, database_pid, page_size, bench_images, log)
        rows += _earlier_writes_rows(server.uri, database_pid, sign_limit, log)
    return {
        "database": DATABASE,
        "server": "fresh",
        "samples": SAMPLES,
        "page_size": page_size,
        "rows": rows,
    }


@dataclass(frozen=True)
class _SigningCounters:
    """The signing limit's counters as the bench's callers have them in the current window."""

    item: RateLimitItem
    window: Window
    lease: int
    # An hour ahead: the TTL monitor must not shrink a collection while it is measured.
    expire_at: float

    @classmethod
    def now(cls, sign_limit: int) -> _SigningCounters:
        """The current window's counters of ``sign_limit`` per minute, leased at its cap."""
        item = parse(f"{sign_limit}/minute")
        now = time.time()
        return cls(item, Window.at(item, now), lease_cap(sign_limit), now + 3600)

    def key(self, caller: str) -> str:
        """The counter's ``_id`` for ``caller`` (``SharedCounts``' key)."""
        return self.item.key_for(SIGN.name, f"user:{caller}") + self.window.key_suffix


def _rate_limit_rows(
    database: Database[dict[str, Any]],
    database_pid: int,
    sign_limit: int,
    bench_counters: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The lease and the read of a count, with the caller's counter alone, then among others'."""
    counts = SharedCounts(database)
    counters = _SigningCounters.now(sign_limit)
    key, lease, expire_at = counters.key(CALLER), counters.lease, counters.expire_at
    counts.add(key, lease, expire_at)
    collection = database[RATE_LIMITS]
    rows = []
    # Larger than what the endpoint runs left even if their windows were not expired meanwhile.
    larger = max(LARGE_RATE_LIMITS, 2 * bench_counters)
    sizes = (("minimal", 1), ("bench", max(bench_counters, 2)), ("larger", larger))
    for size, documents in sizes:
        have = collection.count_documents({})
        if documents > have:  # other callers' counters, as SharedCounts writes them
            collection.insert_many(
                {
                    "_id": counters.key(f"dbcost-{n}"),
                    "count": lease,
                    "expireAt": datetime.fromtimestamp(expire_at, UTC),
                }
                for n in range(have, documents)
            )
        for operation, call in (
            ("lease", lambda: counts.add(key, lease, expire_at)),
            ("count", lambda: counts.count(key)),
        ):
            cpu_ms = server_cpu_ms(call, database_pid)
            log(f"database cost: {operation} with {documents} counters: {cpu_ms:.2f} ms CPU")
            rows.append(
                {"operation": operation, "size": size, "documents": documents, "cpu_ms": cpu_ms}
            )
    return rows


def _earlier_writes_rows(
    uri: str, database_pid: int, sign_limit: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The lease, its collection holding only its counter, after ``EARLIER_WRITES`` other writes
    made without retryable writes, then after as many more made as retryable writes."""
    counters = _SigningCounters.now(sign_limit)
    rows = []
    for operation, client_uri in (
        ("lease_after_writes", bench_mongodb_uri(uri)),
        ("lease_after_retryable_writes", uri),
    ):
        client: MongoClient[dict[str, Any]] = MongoClient(client_uri, socketTimeoutMS=600_000)
        try:
            database = client[DATABASE]
            for n in range(EARLIER_WRITES):  # in another collection: the lease's holds one
                database["dbcost_writes"].update_one(
                    {"_id": n % 50}, {"$inc": {"count": 1}}, upsert=True
                )
            counts = SharedCounts(database, f"{RATE_LIMITS}_{operation}")
            take_lease = functools.partial(
                counts.add, counters.key(CALLER), counters.lease, counters.expire_at
            )
            cpu_ms = server_cpu_ms(take_lease, database_pid)
        finally:
            client.close()
        log(f"database cost: {operation} ({EARLIER_WRITES} earlier writes): {cpu_ms:.2f} ms CPU")
        rows.append(
            {
                "operation": operation,
                "size": "minimal",
                "documents": 1,
                "cpu_ms": cpu_ms,
                "earlier_writes": EARLIER_WRITES,
            }
        )
    return rows


def _page_rows(
    database: Database[dict[str, Any]],
    database_pid: int,
    page_size: int,
    bench_images: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Page 1 of an owner's ``page_size`` images: the owner's alone, among the bench's, then in
    a larger collection where another owner holds most documents (and that owner's page 1)."""
    collection = database["images"]
    repository = ImageRepository(collection, VARIANT_NAMES)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    collection.insert_many(image_documents(LISTER, page_size, start))

    def page_of(owner: str) -> Callable[[], object]:
        def page() -> object:
            return repository.page(
                owner=owner,
                visibility=None,
                kind=None,
                q=None,
                sort=SORT,
                limit=page_size,
                cursor=None,
            )

        return page

    rows = []
    for size, documents in (
        ("minimal", page_size),
        ("bench", max(bench_images, page_size)),
        ("larger", LARGE_IMAGES),
    ):
        have = collection.count_documents({})
        if size == "bench":  # other owners with the bench's images (100 each, variants made)
            for n, first in enumerate(range(have, documents, page_size)):
                count = min(page_size, documents - first)
                others = image_documents(f"dbcost-other-{n}", count, start + timedelta(days=1))
                collection.insert_many(others)
        elif documents > have:  # one library, as section 6 seeds it (no variant maps)
            library = image_documents(
                LIBRARY, documents - have, start + timedelta(days=2), with_variants=False
            )
            for first in range(0, len(library), 5000):
                collection.insert_many(library[first : first + 5000])
        owners = (("page", LISTER),) + ((("library_page", LIBRARY),) if size == "larger" else ())
        for operation, owner in owners:
            cpu_ms = server_cpu_ms(page_of(owner), database_pid)
            keys = keys_examined(database, owner, page_size + 1)
            log(
                f"database cost: {operation} of {owner} with {documents} images: {cpu_ms:.1f} ms "
                f"CPU, {keys} index keys examined"
            )
            rows.append(
                {
                    "operation": operation,
                    "size": size,
                    "documents": documents,
                    "cpu_ms": cpu_ms,
                    "keys_examined": keys,
                    "owner_documents": collection.count_documents({"owner": owner}),
                }
            )
    return rows


def keys_examined(database: Database[dict[str, Any]], owner: str, limit: int) -> int | None:
    """Index keys the database reads for page 1 of ``owner``'s images (its ``explain``): the
    query the broker sends for ``GET /images`` (the owner's live images, newest first, one more
    than the page, hinted to the owner's list index)."""
    command = {
        "find": "images",
        "filter": {"deleting_at": None, "owner": owner},
        "projection": _IMAGE_FIELDS,
        "sort": dict(SORTS[SORT]),
        "limit": limit,
        "hint": dict(list_index_keys(SORT, ("owner",), by_kind=False)),
    }
    plan = database.command("explain", command, verbosity="executionStats")
    keys = plan.get("executionStats", {}).get("totalKeysExamined")
    return int(keys) if keys is not None else None
