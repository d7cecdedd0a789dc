"""The keyset cursor codec and steps, directly: round trips, and every forged cursor refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from broker.errors import ValidationFailed
from broker.pagination import SORTS, decode_cursor, encode_cursor, keyset_steps

OID = "0123456789abcdef01234567"
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
WHEN_MS = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def forged(value: Any) -> str:
    """A cursor as a client could write one: base64url JSON, padding dropped."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def refused(sort: str, cursor: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode_cursor(sort, cursor)
    assert raised.value.details == {"cursor": ["invalid cursor"]}


@pytest.mark.parametrize("sort", sorted(SORTS))
def test_a_row_round_trips_through_its_cursor(sort: str) -> None:
    row = {"_id": ObjectId(OID), "created_at": WHEN, "usage_count": 7, "owner": "alice"}
    expected = {"_id": OID, "created_at": WHEN_MS, "usage_count": 7}
    assert decode_cursor(sort, encode_cursor(sort, row)) == [expected[f] for f, _ in SORTS[sort]]


def test_a_cursor_is_url_safe_and_unpadded() -> None:
    row = {"_id": ObjectId(OID), "created_at": WHEN, "usage_count": 2**40}
    cursor = encode_cursor("most_used", row)
    assert cursor.replace("-", "").replace("_", "").isalnum()


def test_upper_case_hex_ids_are_ids_too() -> None:
    cursor = forged({"s": "newest", "v": [0, OID.upper()]})
    assert decode_cursor("newest", cursor)[1] == OID.upper()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!not base64!!!",
        base64.urlsafe_b64encode(b"\xff\xfe not utf-8").decode(),
        base64.urlsafe_b64encode(b"{not json").decode(),
        forged(["newest", [0, OID]]),
        forged({"v": [0, OID]}),
        forged({"s": "oldest", "v": [0, OID]}),
        forged({"s": "newest", "v": {"0": 0, "1": OID}}),
        forged({"s": "newest", "v": [0]}),
        forged({"s": "newest", "v": [0, OID, OID]}),
        forged({"s": "newest", "v": [0, 12345]}),
        forged({"s": "newest", "v": [0, None]}),
        forged({"s": "newest", "v": [0, OID[:-1]]}),
        forged({"s": "newest", "v": [0, OID + "0"]}),
        forged({"s": "newest", "v": [0, "g" * 24]}),
        forged({"s": "newest", "v": [0, " " + OID[1:]]}),
        forged({"s": "newest", "v": [True, OID]}),
        forged({"s": "newest", "v": [1.5, OID]}),
        forged({"s": "newest", "v": ["1700000000000", OID]}),
        forged({"s": "newest", "v": [-1, OID]}),
        forged({"s": "newest", "v": [253402300800000, OID]}),
    ],
)
def test_forged_newest_cursors_are_refused(cursor: str) -> None:
    refused("newest", cursor)


@pytest.mark.parametrize("count", [2**63, -(2**63) - 1, 10**30, True, 2.0, "3", None])
def test_usage_counts_a_query_cannot_compare_are_refused(count: Any) -> None:
    refused("most_used", forged({"s": "most_used", "v": [count, 0, OID]}))


def test_the_edges_of_what_a_cursor_may_hold_are_accepted() -> None:
    low = decode_cursor("most_used", forged({"s": "most_used", "v": [-(2**63), 0, OID]}))
    high = decode_cursor("oldest", forged({"s": "oldest", "v": [253402300799999, OID]}))
    assert low == [-(2**63), datetime(1970, 1, 1, tzinfo=UTC), OID]
    assert high[0].year == 9999


def test_no_cursor_is_one_step_over_everything() -> None:
    assert keyset_steps("newest", None) == [{}]


def test_steps_continue_strictly_after_the_row_in_sort_direction() -> None:
    oid = ObjectId(OID)
    assert keyset_steps("newest", [WHEN, oid]) == [
        {"created_at": WHEN, "_id": {"$lt": oid}},
        {"created_at": {"$lt": WHEN}},
    ]
    assert keyset_steps("oldest", [WHEN, oid]) == [
        {"created_at": WHEN, "_id": {"$gt": oid}},
        {"created_at": {"$gt": WHEN}},
    ]
    assert keyset_steps("most_used", [3, WHEN, oid]) == [
        {"usage_count": 3, "created_at": WHEN, "_id": {"$lt": oid}},
        {"usage_count": 3, "created_at": {"$lt": WHEN}},
        {"usage_count": {"$lt": 3}},
    ]
