"""``flask sweep`` run by cron on every host at the same moment deletes each orphan once and
never a live object."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo.database import Database

from tests.support.cluster import Cluster
from tests.support.faults import TappedS3
from tests.support.images import png_bytes
from tests.support.s3 import S3Endpoint, object_exists
from tests.support.settings import NO_RATE_LIMITS
from tests.support.upload import pending_upload, upload

pytestmark = [pytest.mark.scale, pytest.mark.s3]

# A short PUT URL and confirm grace, so the uploads of the test end within seconds.
UPLOAD_EXPIRES = 3
CONFIRM_GRACE = 2
LIVE, ABANDONED, INTERRUPTED = 6, 10, 4
# Each DELETE the sweepers send is held back this long, so the two sweeps overlap for seconds
# (otherwise the first could finish before the second has started).
DELETE_DELAY_S = 0.4
USER = "fay"


def test_sweep_on_every_host_at_once_deletes_each_orphan_once(
    make_cluster: Callable[..., Cluster],
    database: Database[dict[str, Any]],
    rgw: S3Endpoint,
    rgw_bucket: str,
    s3: Any,
) -> None:
    cluster = make_cluster(
        BROKER_UPLOAD_EXPIRES=str(UPLOAD_EXPIRES),
        BROKER_CONFIRM_GRACE=str(CONFIRM_GRACE),
        **NO_RATE_LIMITS,
    )
    live = [upload(cluster.api, png_bytes(4 + n, 3), sub=USER).image for n in range(LIVE)]
    # Deletes that stopped after the tombstone (a host died): the sweeper finishes them.
    interrupted = [
        upload(cluster.api, png_bytes(20 + n, 3), sub=USER).image for n in range(INTERRUPTED)
    ]
    database["images"].update_many(
        {"_id": {"$in": [ObjectId(image["id"]) for image in interrupted]}},
        {"$set": {"deleting_at": datetime.now(UTC) - timedelta(minutes=5)}},
    )
    # Uploaded and never confirmed: the sweeper deletes them once their URL and grace ran out.
    abandoned = [
        pending_upload(cluster.api, png_bytes(40 + n, 3), sub=USER)["key"] for n in range(ABANDONED)
    ]
    # Every upload's URL and grace have ended: the confirmed ones' keys are due for cleaning
    # too (their images are live there, or being deleted).
    time.sleep(UPLOAD_EXPIRES + CONFIRM_GRACE + 1)

    tap = TappedS3(("127.0.0.1", rgw.port), delete_delay=DELETE_DELAY_S)
    try:
        finished = cluster.everywhere("sweep", env={"BROKER_S3_ENDPOINT_URL": tap.endpoint_url})
    finally:
        tap.close()
    assert [run.returncode for run in finished] == [0, 0], finished
    reports = [json.loads(run.stdout.strip().splitlines()[-1]) for run in finished]
    # Both hosts took part: the sweeps overlapped.
    assert all(report["expired_uploads"] + report["finished_deletes"] for report in reports)
    totals = Counter[str]()
    for report in reports:
        totals.update(report)
    assert totals == {
        "expired_uploads": ABANDONED,
        "finished_deletes": INTERRUPTED,
        "cleaned_uploads": LIVE + INTERRUPTED,
        "orphan_variants": 0,  # no worker ran: no variant object to judge
        "failed": 0,
    }

    deleted = Counter(path.removeprefix(f"/{rgw_bucket}/") for path in tap.paths("DELETE"))
    orphans = abandoned + [image["key"] for image in interrupted]
    assert deleted == Counter(orphans)  # each orphan once, and nothing else
    assert not any(object_exists(s3, rgw_bucket, key) for key in orphans)
    assert all(object_exists(s3, rgw_bucket, image["key"]) for image in live)
    assert sorted(str(doc["_id"]) for doc in database["images"].find()) == sorted(
        image["id"] for image in live
    )
    quota = database["quotas"].find_one({"_id": USER}) or {}
    assert quota.get("images") == LIVE
    # Signed on either host, the live images are served.
    for image, instance in zip(live, cluster.instances * LIVE, strict=False):
        assert instance.call("GET", f"/images/{image['id']}/signed-url", sub=USER).ok
