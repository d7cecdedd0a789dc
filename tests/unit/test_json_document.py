"""json_document answers exactly what jsonify would, with the broker's JSON settings."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask, jsonify

from broker.http.payloads import json_document

PAYLOADS: list[Any] = [
    {},
    [],
    None,
    "plain",
    {"z": 1, "a": 2, "m": [3, 2, 1]},  # key order kept, never sorted
    {"name": 'photo é 中 \u2028 "quoted" \\ </script>', "emoji": "\U0001f4f7"},
    {"big": 2**70, "float": 0.1, "neg": -0.0, "true": True, "none": None},
    {"when": datetime(2026, 11, 30, 5, 41, 54, 123456, tzinfo=UTC), "day": date(2026, 1, 2)},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("1.50")},
    {"nested": {"deeper": [{"url": "https://s3.example/a?X-Amz-Signature=ab&b=c%20d"}]}},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_same_bytes_and_content_type_as_jsonify(app: Flask, payload: Any) -> None:
    with app.app_context():
        ours, theirs = json_document(payload), jsonify(payload)
    assert ours.get_data() == theirs.get_data()
    assert ours.headers["Content-Type"] == theirs.headers["Content-Type"]
    assert ours.status_code == theirs.status_code == 200


def test_what_json_cannot_encode_fails_as_in_jsonify(app: Flask) -> None:
    with app.app_context(), pytest.raises(TypeError):
        jsonify({"x": object()})
    with app.app_context(), pytest.raises(TypeError):
        json_document({"x": object()})
