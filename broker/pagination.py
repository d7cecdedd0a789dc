"""Keyset pagination of the image listings: the sort orders, the cursor codec, the keyset steps.

A cursor is the base64url JSON ``{"s": sort, "v": [values…]}`` of the last row of a page, one
value per sort field. Clients hand it back, so decoding treats it as hostile: anything but the
exact shape of its sort, with values a query can compare, is a 400 naming ``cursor``. Pure: rows
and conditions are plain mappings in MongoDB's query language; :mod:`broker.db` runs them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from broker.domain import field_error

ASCENDING = 1
DESCENDING = -1
# The record's id: an ObjectId in the database, its 24 hex digits in a cursor.
ID_FIELD = "_id"

SORTS: dict[str, list[tuple[str, int]]] = {
    "newest": [("created_at", DESCENDING), (ID_FIELD, DESCENDING)],
    "oldest": [("created_at", ASCENDING), (ID_FIELD, ASCENDING)],
    "most_used": [
        ("usage_count", DESCENDING),
        ("created_at", DESCENDING),
        (ID_FIELD, DESCENDING),
    ],
}

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
# The last millisecond Python's datetime (and so a cursor) can stand for: 9999-12-31.
_MAX_DATETIME_MS = 253402300799999
# BSON integers are 64-bit: anything wider cannot be compared in a query.
_MIN_INT64, _MAX_INT64 = -(2**63), 2**63 - 1


def encode_cursor(sort: str, row: Mapping[str, Any]) -> str:
    """The opaque cursor that continues a listing after ``row`` in ``sort`` order."""
    values = []
    for field, _ in SORTS[sort]:
        value = row.get(field)
        if isinstance(value, datetime):
            value = int(value.timestamp() * 1000)
        elif field == ID_FIELD:
            value = str(value)
        values.append(value)
    raw = json.dumps({"s": sort, "v": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> list[Any]:
    """The sort values a cursor of ``sort`` holds (the id as its hex string); else 400."""
    invalid = field_error("cursor", "invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(data, dict) or data.get("s") != sort or not isinstance(data.get("v"), list):
        raise invalid
    fields = SORTS[sort]
    if len(data["v"]) != len(fields):
        raise invalid
    values: list[Any] = []
    for (field, _), value in zip(fields, data["v"], strict=True):
        if field == ID_FIELD:
            if not isinstance(value, str) or not _OBJECT_ID.fullmatch(value):
                raise invalid
            values.append(value)
        elif field == "created_at":
            if not _int_within(value, 0, _MAX_DATETIME_MS):
                raise invalid
            values.append(datetime.fromtimestamp(value / 1000, tz=UTC))
        else:
            if not _int_within(value, _MIN_INT64, _MAX_INT64):
                raise invalid
            values.append(value)
    return values


def _int_within(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def keyset_steps(sort: str, after: Sequence[Any] | None) -> list[dict[str, Any]]:
    """The conditions that, run in order, list everything strictly after the row ``after``.

    For a sort on (a, b, c) after the row (x, y, z): first {a: x, b: y, c beyond z}, then
    {a: x, b beyond y}, then {a beyond x}. Each is one contiguous range of the list index, so
    every planner walks it from where the previous page ended (a single $or of the three is
    what some MongoDB-compatible servers answer with a collection scan). No cursor: one step,
    the whole listing. ``after`` holds the values as stored (the id as the database's type).
    """
    if after is None:
        return [{}]
    fields = SORTS[sort]
    steps = []
    for i in reversed(range(len(fields))):
        step: dict[str, Any] = {f: v for (f, _), v in zip(fields[:i], after[:i], strict=True)}
        field, direction = fields[i]
        step[field] = {"$lt" if direction == DESCENDING else "$gt": after[i]}
        steps.append(step)
    return steps
