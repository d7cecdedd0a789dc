"""Idempotency and invariants under concurrency: threads, each with its own test client, released
together by a barrier against one app (the Flask app is thread-safe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import Flow

TIMEOUT = 60


def together(count: int, call: Callable[[Any], Any], args: list[Any] | None = None) -> list[Any]:
    """Run ``call`` in ``count`` threads released at the same instant; return the results."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)
    args = args if args is not None else list(range(count))

    def run(arg: Any) -> Any:
        barrier.wait()
        return call(arg)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run, arg) for arg in args]
        return [future.result(timeout=TIMEOUT) for future in futures]


def put_pending(flow: Flow) -> str:
    """The key of an upload of alice's, stored and not yet confirmed."""
    return str(flow.pending()["key"])


def images(flow: Flow) -> Any:
    return broker_of(flow.app).db.images.collection


def quota_images(flow: Flow) -> int:
    return int(broker_of(flow.app).db.quotas.usage("alice").images)


@pytest.mark.parametrize("round_", range(2))
def test_the_same_confirm_from_ten_threads_records_one_image(flow: Flow, round_: int) -> None:
    key = put_pending(flow)
    headers = auth()

    def confirm(_: Any) -> tuple[int, Any]:
        response = flow.app.test_client().post("/images", json={"key": key}, headers=headers)
        return response.status_code, response.get_json()

    results = together(10, confirm)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 9 + [201], results
    assert len({body["image"]["id"] for _, body in results}) == 1
    assert images(flow).count_documents({"key": key}) == 1
    assert quota_images(flow) == 1


@pytest.mark.parametrize("count", [2, 5])
def test_concurrent_make_primary_leaves_exactly_one(flow: Flow, count: int) -> None:
    ids = [flow.upload(kind="profile").image["id"] for _ in range(count)]
    other_kind = flow.upload(kind="cover").image["id"]
    headers = auth()
    for _ in range(3):  # a few rounds: the race differs each time

        def promote(image_id: str) -> int:
            client = flow.app.test_client()
            response = client.patch(
                f"/images/{image_id}", json={"is_primary": True}, headers=headers
            )
            return response.status_code

        statuses = together(count, promote, ids)
        assert all(status == 200 for status in statuses), statuses
        primaries = list(
            images(flow).find({"owner": "alice", "kind": "profile", "is_primary": True})
        )
        assert len(primaries) == 1, primaries
        listed = flow.client.get("/images?kind=profile&limit=100", headers=headers).json["images"]
        assert sum(image["is_primary"] for image in listed) == 1
    # Another kind's flag is untouched.
    assert images(flow).count_documents({"kind": "cover", "is_primary": True}) == 0
    assert (
        flow.client.get(f"/images/{other_kind}", headers=headers).json["image"]["is_primary"]
        is False
    )


def test_concurrent_primary_and_kind_change_keep_one_primary_per_kind(flow: Flow) -> None:
    ids = [flow.upload(kind="profile").image["id"] for _ in range(4)]
    headers = auth()

    def act(index: int) -> int:
        client = flow.app.test_client()
        body = {"is_primary": True} if index % 2 == 0 else {"kind": "cover", "is_primary": True}
        return client.patch(f"/images/{ids[index]}", json=body, headers=headers).status_code

    statuses = together(4, act, list(range(4)))
    assert all(status == 200 for status in statuses), statuses
    for kind in ("profile", "cover"):
        assert images(flow).count_documents({"kind": kind, "is_primary": True}) <= 1


def test_usage_from_ten_threads_counts_every_use(flow: Flow) -> None:
    image = flow.upload().image
    headers = auth()

    def use(_: Any) -> list[int]:
        client = flow.app.test_client()
        return [
            client.post(f"/images/{image['id']}/usage", headers=headers).status_code
            for _ in range(10)
        ]

    statuses = [status for batch in together(10, use) for status in batch]
    assert statuses == [200] * 100
    final = flow.client.get(f"/images/{image['id']}", headers=headers).json["image"]
    assert final["usage_count"] == 100
    assert final["last_used_at"] is not None


def test_concurrent_deletes_remove_once(flow: Flow) -> None:
    image = flow.upload().image
    headers = auth()

    def delete(_: Any) -> int:
        return flow.app.test_client().delete(f"/images/{image['id']}", headers=headers).status_code

    statuses = sorted(together(5, delete))
    assert statuses[0] == 204 and set(statuses) <= {204, 404}, statuses
    assert images(flow).count_documents({}) == 0
    assert broker_of(flow.app).bucket.head(image["key"]) is None
    assert quota_images(flow) == 0


def test_concurrent_presigns_never_overshoot_the_quota(make_app: Callable[..., Flask]) -> None:
    # Uploads hold their quota from presign on (the contract counts pending bytes), so the race
    # to the limit is run at presign: one conditional $inc each, no overshoot.
    flow = Flow(make_app(BROKER_QUOTA_MAX_IMAGES="3"))
    headers = auth()

    def presign(_: Any) -> int:
        response = flow.presign(headers=headers)
        if response.status_code >= 400:
            assert_envelope(response, 413, "too_large")
        return int(response.status_code)

    statuses = sorted(together(6, presign))
    assert statuses == [201, 201, 201, 413, 413, 413], statuses
    assert quota_images(flow) == 3
    uploads = broker_of(flow.app).db.uploads.collection
    assert uploads.count_documents({"owner": "alice"}) == 3


def test_concurrent_confirms_keep_what_presign_held(make_app: Callable[..., Flask]) -> None:
    flow = Flow(make_app(BROKER_QUOTA_MAX_IMAGES="3"))
    keys = [put_pending(flow) for _ in range(3)]
    headers = auth()

    def confirm(key: str) -> int:
        response = flow.app.test_client().post("/images", json={"key": key}, headers=headers)
        return response.status_code

    assert together(3, confirm, keys) == [201, 201, 201]
    assert images(flow).count_documents({}) == 3
    assert quota_images(flow) == 3


def test_concurrent_presigns_get_distinct_keys(flow: Flow) -> None:
    headers = auth()

    def presign(_: Any) -> str:
        response = Flow(flow.app).presign(headers=headers)
        assert response.status_code == 201
        key: str = response.json["key"]
        return key

    keys = together(10, presign)
    assert len(set(keys)) == 10
    uploads = broker_of(flow.app).db.uploads.collection
    assert uploads.count_documents({}) == 10
