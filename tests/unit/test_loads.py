"""The hot paths' plain loads accept what their schemas accept, load it the same, and leave
every refusal to the schema itself: same messages, word for word."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from broker import schemas


def _outcome(load: Any, data: Any) -> tuple[str, Any]:
    """What loading ``data`` gives: the loaded dict (keys in order) or the error messages."""
    try:
        return "loaded", list(load(data).items())
    except ValidationError as error:
        return "refused", error.messages


def _same(data: Any) -> None:
    schema = schemas.signed_urls_request
    assert _outcome(schemas.load_signed_urls_request, data) == _outcome(schema.load, data)


def test_the_batch_request_is_compiled() -> None:
    # Not simply the schema's own load: the fast path is the one under test.
    assert schemas.load_signed_urls_request != schemas.signed_urls_request.load


ID = "65f000000000000000000001"
BODIES: list[Any] = [
    # Accepted: one id, a hundred (repeats are the view's business), a variant, the bounds.
    {"ids": [ID]},
    {"ids": [ID] * 100},
    {"ids": [ID, "x" * 64], "variant": "thumb"},
    {"variant": "original", "ids": ["x"]},
    {"ids": ["é" * 64], "variant": "v" * 32},
    # Refused, each in its own way and several at once.
    {},
    {"ids": []},
    {"ids": [ID] * 101},
    {"ids": "x"},
    {"ids": None},
    {"ids": {"a": 1}},
    {"ids": [1, ID, None, "", "x" * 65, ["x"], True]},
    {"ids": ["x" * 65]},
    {"ids": [ID, ""]},
    {"ids": [ID, 1]},
    {"ids": [ID, True]},
    {"ids": [ID], "variant": ""},
    {"ids": [ID], "variant": None},
    {"ids": [ID], "variant": 3},
    {"ids": [ID], "variant": "v" * 33},
    {"ids": [ID], "extra": 1},
    {"extra": 1, "variant": "", "ids": []},
    {"variant": "thumb"},
    [ID],
    "ids",
    None,
]


@pytest.mark.parametrize("body", BODIES)
def test_each_body_is_loaded_or_refused_as_the_schema_does(body: Any) -> None:
    _same(body)


TEXT = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["", "x" * 64, "x" * 65, "v" * 32, "v" * 33, "thumb", ID]),
)
JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ids", "variant", "extra", "Ids"]),
        st.one_of(
            st.lists(st.one_of(TEXT, TEXT, JSON_VALUE), max_size=102),
            st.lists(st.just(ID), min_size=99, max_size=101),
            JSON_VALUE,
        ),
    )
)
def test_any_body_is_loaded_or_refused_as_the_schema_does(body: dict[str, Any]) -> None:
    _same(body)


def test_a_schema_it_cannot_follow_is_left_to_marshmallow() -> None:
    class Hooked(schemas.StrictSchema):
        name = fields.String()

        @post_load
        def _upper(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            return {"name": data["name"].upper()}

    class Choosing(schemas.StrictSchema):
        name = fields.String(validate=validate.OneOf(["a"]))

    class Defaulting(schemas.StrictSchema):
        name = fields.String(load_default="a")

    class Numbered(schemas.StrictSchema):
        ids = fields.List(fields.Integer())

    class Lenient(Schema):
        class Meta:
            unknown = EXCLUDE

        name = fields.String()

    for schema in (Hooked(), Choosing(), Defaulting(), Numbered(), Lenient()):
        assert schemas.plain_load(schema) == schema.load
