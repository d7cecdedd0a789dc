"""The signing caches: a batch's look-ups in one go, and a memo bounded without expiry."""

from __future__ import annotations

from broker.caches import LookupCache, SignedUrlMemo
from broker.domain import Principal
from tests.support.records import image_record


def test_a_batch_of_lookups_returns_only_what_the_caller_may_sign_in_the_order_asked() -> None:
    cache = LookupCache(maxsize=100, ttl=30)
    alices = [image_record("alice") for _ in range(3)]
    bobs = image_record("bob")
    cache.put_many([*alices, bobs])
    asked = [alices[2].id, bobs.id, "unknown", alices[0].id]
    found = cache.get_many(asked, Principal("alice"))
    assert list(found) == [alices[2].id, alices[0].id]
    assert found[alices[0].id].key == alices[0].key
    admin = cache.get_many(asked, Principal("root", is_admin=True))
    assert list(admin) == [alices[2].id, bobs.id, alices[0].id]
    assert LookupCache(maxsize=0, ttl=30).get_many(asked, Principal("alice")) == {}


def test_a_batch_sees_exactly_what_single_lookups_see_as_entries_age_and_are_evicted() -> None:
    now = [0.0]
    cache = LookupCache(maxsize=4, ttl=30, clock=lambda: now[0])
    images = [image_record("alice") for _ in range(6)]
    for image in images[:3]:
        cache.put_many([image])
        now[0] += 10  # put at 0, 10 and 20: they expire at 30, 40 and 50
    now[0] = 25
    cache.put_many(images[3:5])  # at 25, expiring at 55: five for four places, the first goes
    alice = Principal("alice")
    asked = [image.id for image in reversed(images)] + ["unknown", images[4].id]
    seen: list[int] = []
    for now[0] in (25.0, 39.9, 40.0, 49.9, 50.0, 54.9, 55.0):
        one_by_one = {
            image_id: target
            for image_id in asked
            if (target := cache.get(image_id, alice)) is not None
        }
        batch = cache.get_many(asked, alice)
        assert list(batch.items()) == list(one_by_one.items())
        seen.append(len(batch))
    assert seen == [4, 4, 3, 3, 2, 2, 0]


def test_the_memo_keeps_each_windows_url_apart_and_stays_within_its_bound() -> None:
    memo = SignedUrlMemo(maxsize=3, window=3600)
    memo.put(("id", "inline", 300, 1000, "AK"), "first-window")
    memo.put(("id", "inline", 300, 4600, "AK"), "next-window")
    memo.put(("id", "inline", 300, 4600, "AK2"), "rotated-key")
    assert memo.get(("id", "inline", 300, 1000, "AK")) == "first-window"
    assert memo.get(("id", "inline", 300, 4600, "AK")) == "next-window"
    assert memo.get(("id", "attachment", 300, 4600, "AK")) is None
    # Full: it starts afresh rather than grow.
    memo.put(("other", "inline", 300, 4600, "AK"), "fourth")
    assert memo.get(("id", "inline", 300, 1000, "AK")) is None
    assert memo.get(("other", "inline", 300, 4600, "AK")) == "fourth"
    off = SignedUrlMemo(maxsize=3, window=0)
    off.put(("id", "inline", 300, 1000, "AK"), "never")
    assert off.get(("id", "inline", 300, 1000, "AK")) is None
