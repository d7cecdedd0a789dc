"""A rate limit is the configured limit however many hosts and workers serve the caller."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest
from bson import ObjectId

from tests.support.cluster import Cluster, at_once
from tests.support.upload import presign

pytestmark = [pytest.mark.scale, pytest.mark.s3]

SIGN_LIMIT = 10
PRESIGN_LIMIT = 6
# Several times the limit, sent at once across two hosts x two workers: with counters per
# process each of the four would let the limit through.
REQUESTS = 40


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
