"""A view's query: an empty query string answers the schema's defaults, loaded once."""

from __future__ import annotations

import itertools

import pytest
from flask import Flask
from marshmallow import Schema, ValidationError, fields, post_load

from broker import schemas
from broker.http.payloads import query

app = Flask(__name__)


def load(schema: Schema, query_string: str = "") -> dict[str, object]:
    with app.test_request_context(query_string=query_string):
        return query(schema)


@pytest.mark.parametrize(
    "schema", [schemas.signed_url_query, schemas.list_images_query, schemas.public_link_query]
)
def test_an_empty_query_loads_as_the_schema_loads_nothing(schema: Schema) -> None:
    assert load(schema) == schema.load({})
    assert load(schema) == schema.load({})  # the remembered answer too


def test_a_caller_changing_its_answer_changes_no_later_one() -> None:
    first = load(schemas.list_images_query)
    first["limit"] = 99
    assert load(schemas.list_images_query)["limit"] == 20


def test_a_query_string_is_loaded_and_validated() -> None:
    assert load(schemas.list_images_query, "limit=5")["limit"] == 5
    with pytest.raises(ValidationError):
        load(schemas.list_images_query, "limit=0")


def test_a_required_field_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValidationError):
            load(schemas.signed_url_by_key_query)


def test_a_default_that_can_change_is_loaded_every_time() -> None:
    counter = itertools.count()

    class Counted(Schema):
        n = fields.Integer(load_default=lambda: next(counter))

    counted = Counted()
    assert [load(counted)["n"] for _ in range(3)] == [0, 1, 2]


def test_a_schema_with_a_load_hook_is_loaded_every_time() -> None:
    counter = itertools.count()

    class Hooked(Schema):
        @post_load
        def stamp(self, data: dict[str, object], **kwargs: object) -> dict[str, object]:
            return {**data, "n": next(counter)}

    hooked = Hooked()
    assert [load(hooked)["n"] for _ in range(3)] == [0, 1, 2]
