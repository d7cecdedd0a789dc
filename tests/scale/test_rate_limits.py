"""A rate limit is the configured limit however many hosts and workers serve the caller."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from bson import ObjectId
from pymongo.database import Database

from broker.db.rate_limits import RATE_LIMITS
from broker.sliding_window import lease_cap
from tests.support.cluster import Cluster, at_once
from tests.support.upload import presign

pytestmark = [pytest.mark.scale, pytest.mark.s3]

SIGN_LIMIT = 10
PRESIGN_LIMIT = 6
# Several times the limit, sent at once across two hosts x two workers: with counters per
# process each of the four would let the limit through.
REQUESTS = 40
# A limit whose processes lease several permits at a time (200 // 50 = 4), per hour so that a run
# crossing a window's edge carries less than one hit of the previous window into the estimate.
LEASED_LIMIT = 200
PROCESSES = 4  # 2 hosts x 2 workers


def test_signing_is_limited_to_the_limit_across_hosts(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(BROKER_RATE_LIMIT_SIGN=f"{SIGN_LIMIT}/minute")
    missing = str(ObjectId())  # within the limit a caller is told 404; over it, 429
    answers = at_once(
        [
            partial(cluster.instances[n % 2].call, "GET", f"/images/{missing}/signed-url")
            for n in range(REQUESTS)
        ]
    )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {404: SIGN_LIMIT, 429: REQUESTS - SIGN_LIMIT}
    refused = [answer for answer in answers if answer.status_code == 429]
    assert all(answer.json()["error"]["code"] == "rate_limited" for answer in refused)
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in refused)
    # Another caller has a budget of their own, on either host.
    for instance in cluster.instances:
        assert instance.call("GET", f"/images/{missing}/signed-url", sub="bob").status_code == 404


def test_presigning_is_limited_to_the_limit_across_hosts(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(
        BROKER_RATE_LIMIT_PRESIGN=f"{PRESIGN_LIMIT}/minute", BROKER_QUOTA_MAX_IMAGES="0"
    )
    answers = at_once(
        [partial(presign, cluster.instances[n % 2].api, sub="carol") for n in range(REQUESTS)]
    )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: PRESIGN_LIMIT, 429: REQUESTS - PRESIGN_LIMIT}


def test_leased_permits_stay_within_the_limit_across_hosts(
    make_cluster: Callable[..., Cluster], database: Database[dict[str, Any]]
) -> None:
    cluster = make_cluster(BROKER_RATE_LIMIT_SIGN=f"{LEASED_LIMIT}/hour")
    missing = str(ObjectId())

    def sign(n: int) -> int:
        return cluster.instances[n % 2].call("GET", f"/images/{missing}/signed-url").status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(sign, range(LEASED_LIMIT * 3 // 2)))
    assert set(statuses) == {404, 429}
    # Never more than the limit; fewer by at most a lease per other process (held unspent or
    # being given back when a request was refused) and, should the run cross a window's edge,
    # the permits left unspent in the window before.
    cap = lease_cap(LEASED_LIMIT)
    assert LEASED_LIMIT - (2 * PROCESSES - 1) * cap <= statuses[404] <= LEASED_LIMIT
    counts = [window["count"] for window in database[RATE_LIMITS].find()]
    assert statuses[404] <= sum(counts) and max(counts) <= LEASED_LIMIT
