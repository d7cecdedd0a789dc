"""Quotas are exact when one user's presigns, confirms and deletes arrive at once on several
hosts: never more than the quota granted, every reservation counted once, given back once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from pymongo.database import Database

from tests.support.cluster import Cluster, at_once
from tests.support.images import png_bytes
from tests.support.settings import NO_RATE_LIMITS
from tests.support.upload import confirm, presign, put

pytestmark = [pytest.mark.scale, pytest.mark.s3]

QUOTA = 4
ATTEMPTS = 12
USER = "dora"


def recorded_usage(database: Database[dict[str, Any]]) -> dict[str, int]:
    """The user's usage as the quota counter holds it."""
    doc = database["quotas"].find_one({"_id": USER}) or {}
    return {"images": doc.get("images", 0), "bytes": doc.get("bytes", 0)}


def actual_usage(database: Database[dict[str, Any]]) -> dict[str, int]:
    """The user's usage counted from what exists: images, and uploads still holding quota."""
    images = list(database["images"].find({"owner": USER}))
    held = list(database["uploads"].find({"owner": USER, "quota_held": True}))
    return {
        "images": len(images) + len(held),
        "bytes": sum(doc["size"] for doc in images + held),
    }


def test_the_quota_holds_exactly_across_hosts(
    make_cluster: Callable[..., Cluster], database: Database[dict[str, Any]]
) -> None:
    cluster = make_cluster(BROKER_QUOTA_MAX_IMAGES=str(QUOTA), **NO_RATE_LIMITS)
    first, second = cluster.instances
    files = [png_bytes(4 + n, 3) for n in range(ATTEMPTS)]

    # Three times the quota presigned at once, alternately on each host.
    answers = at_once(
        [
            partial(presign, cluster.instances[n % 2].api, files[n], sub=USER)
            for n in range(ATTEMPTS)
        ]
    )
    assert Counter(a.status_code for a in answers) == {201: QUOTA, 413: ATTEMPTS - QUOTA}
    granted = [(a.get_json(), files[n]) for n, a in enumerate(answers) if a.status_code == 201]
    assert recorded_usage(database) == actual_usage(database)
    for grant, data in granted:
        assert put(grant, data).status_code == 200

    # Each upload confirmed on both hosts at the same moment: one image each, counted once.
    confirms = at_once(
        [
            partial(confirm, instance.api, grant["key"], sub=USER)
            for grant, _data in granted
            for instance in cluster.instances
        ]
    )
    assert sorted(c.status_code for c in confirms) == [200] * QUOTA + [201] * QUOTA
    images = [c.get_json()["image"] for c in confirms if c.status_code == 201]
    assert recorded_usage(database) == actual_usage(database)
    assert recorded_usage(database) == {
        "images": QUOTA,
        "bytes": sum(len(data) for _grant, data in granted),
    }

    # Full: a presign on either host is refused.
    for instance in cluster.instances:
        assert presign(instance.api, files[0], sub=USER).status_code == 413

    # Two images deleted, each on both hosts at once, while presigns arrive on both: each
    # delete gives back its share once, and no more than the freed places are granted.
    doomed = images[:2]
    deletes: list[Callable[[], Any]] = [
        partial(instance.call, "DELETE", f"/images/{image['id']}", sub=USER)
        for image in doomed
        for instance in (first, second)
    ]
    presigns: list[Callable[[], Any]] = [
        partial(presign, cluster.instances[n % 2].api, files[n], sub=USER) for n in range(ATTEMPTS)
    ]
    during = at_once([*deletes, *presigns])
    # A delete racing another of the same image answers 204 too (the image is going either
    # way) or 404 (it is gone).
    assert {a.status_code for a in during[: len(deletes)]} <= {204, 404}, during
    granted_during = sum(a.status_code == 201 for a in during[len(deletes) :])
    assert granted_during <= len(doomed)
    assert recorded_usage(database) == actual_usage(database)
    for image in doomed:
        assert first.call("GET", f"/images/{image['id']}", sub=USER).status_code == 404
    # Whatever the race left free is granted now, and nothing more.
    after = at_once(presigns)
    assert sum(a.status_code == 201 for a in after) == len(doomed) - granted_during
    assert recorded_usage(database) == actual_usage(database)
    assert recorded_usage(database)["images"] == QUOTA
