"""The variant worker run on every host at the same moment makes each variant once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.faults import TappedS3
from tests.support.images import png_bytes
from tests.support.s3 import S3Endpoint, object_exists
from tests.support.settings import NO_RATE_LIMITS
from tests.support.upload import upload

pytestmark = [pytest.mark.scale, pytest.mark.s3]

IMAGES = 10
VARIANTS = "thumb:64x64,medium:160x160"
USER = "gus"


def test_workers_on_every_host_at_once_make_each_variant_once(
    make_cluster: Callable[..., Cluster], rgw: S3Endpoint, rgw_bucket: str, s3: Any
) -> None:
    cluster = make_cluster(BROKER_VARIANTS=VARIANTS, **NO_RATE_LIMITS)
    # Confirms spread over both hosts queue the jobs; no worker runs yet.
    images = [upload(cluster.api, png_bytes(200 + n, 150), sub=USER).image for n in range(IMAGES)]

    tap = TappedS3(("127.0.0.1", rgw.port))
    try:
        finished = cluster.everywhere(
            "worker", "--once", env={"BROKER_S3_ENDPOINT_URL": tap.endpoint_url}
        )
    finally:
        tap.close()
    assert [run.returncode for run in finished] == [0, 0], finished
    tallies = [json.loads(run.stdout.strip().splitlines()[-1]) for run in finished]
    # Both hosts took part (the runs overlapped), and between them made every image once.
    assert all(tally["made"] for tally in tallies), tallies
    assert sum(tally["made"] for tally in tallies) == IMAGES, tallies
    assert sum(tally["failed"] + tally["retried"] for tally in tallies) == 0, tallies

    # Each variant object was written once: no two workers rendered the same job.
    variant_puts = Counter(
        path.removeprefix(f"/{rgw_bucket}/")
        for path in tap.paths("PUT")
        if path.startswith(f"/{rgw_bucket}/variants.v1/")
    )
    assert len(variant_puts) == IMAGES * 2
    assert set(variant_puts.values()) == {1}

    # Either host shows every variant ready, at the key that was written, and signs it.
    for image, instance in zip(images, cluster.instances * IMAGES, strict=False):
        shown = instance.call("GET", f"/images/{image['id']}", sub=USER)
        assert shown.status_code == 200
        variants = shown.json()["image"]["variants"]
        assert {name: v["state"] for name, v in variants.items()} == {
            "thumb": "ready",
            "medium": "ready",
        }
        signed = instance.call("GET", f"/images/{image['id']}/signed-url?variant=thumb", sub=USER)
        assert signed.status_code == 200
        assert signed.json()["variant"] == "thumb"
    written = set(variant_puts)
    assert all(object_exists(s3, rgw_bucket, key) for key in written)
