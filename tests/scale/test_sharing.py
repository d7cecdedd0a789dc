"""A visibility change or a revoked public link on one host: past ``BROKER_LOOKUP_CACHE_TTL``
no host signs for a caller who may no longer see the image, nor follows the dead link."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.support.cluster import Cluster, sleep_until, statuses
from tests.support.settings import NO_RATE_LIMITS
from tests.support.upload import upload

pytestmark = [pytest.mark.scale, pytest.mark.s3]

LOOKUP_TTL = 4
MARGIN_S = 1.0
NO_TOKEN: dict[str, str] = {}


def test_no_host_signs_for_others_past_the_ttl_once_an_image_turns_private(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(
        BROKER_LOOKUP_CACHE_TTL=str(LOOKUP_TTL), BROKER_RATE_LIMIT_PUBLIC="", **NO_RATE_LIMITS
    )
    first, second = cluster.instances
    image = upload(cluster.api, visibility="public").image
    link = urlsplit(image["public_url"]).path
    signed = f"/images/{image['id']}/signed-url"
    # Every worker of every host signs it for another user and follows its public link.
    warmed_at = time.time()
    assert statuses(cluster.on_every_worker("GET", signed, sub="bob")) == {
        "host1": {200},
        "host2": {200},
    }
    assert statuses(
        cluster.on_every_worker("GET", link, headers=NO_TOKEN, allow_redirects=False)
    ) == {
        "host1": {302},
        "host2": {302},
    }

    turned = first.call("PATCH", f"/images/{image['id']}", json={"visibility": "private"})
    assert turned.status_code == 200 and turned.json()["image"]["public_url"] is None
    private_at = time.time()
    soon = statuses(cluster.on_every_worker("GET", signed, sub="bob"))
    if time.time() < warmed_at + LOOKUP_TTL:
        # Within the TTL a worker that kept the image may still sign it (the bound under test);
        # at least one did, or the check below would prove nothing about the caches.
        assert 200 in soon["host1"] | soon["host2"], soon

    sleep_until(private_at + LOOKUP_TTL + MARGIN_S)
    assert statuses(cluster.on_every_worker("GET", signed, sub="bob")) == {
        "host1": {404},
        "host2": {404},
    }
    assert statuses(
        cluster.on_every_worker("GET", link, headers=NO_TOKEN, allow_redirects=False)
    ) == {
        "host1": {404},
        "host2": {404},
    }
    # The owner still signs it on every host.
    assert statuses(cluster.on_every_worker("GET", signed)) == {"host1": {200}, "host2": {200}}

    # Public again, on the other host: a new link that every host follows; the old one stays
    # dead everywhere.
    again = second.call("PATCH", f"/images/{image['id']}", json={"visibility": "public"})
    new_link = urlsplit(again.json()["image"]["public_url"]).path
    assert new_link != link
    assert statuses(
        cluster.on_every_worker("GET", new_link, headers=NO_TOKEN, allow_redirects=False)
    ) == {
        "host1": {302},
        "host2": {302},
    }
    assert statuses(
        cluster.on_every_worker("GET", link, headers=NO_TOKEN, allow_redirects=False)
    ) == {
        "host1": {404},
        "host2": {404},
    }
