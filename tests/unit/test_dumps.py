"""The hot paths' plain dumps write exactly what their schemas dump, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from marshmallow import fields, post_dump, pre_dump, pre_load

from broker import schemas
from broker.db.images import Page
from broker.domain import Image
from broker.images.downloads import SignedImage, SignedUrl
from broker.variants.records import PENDING_VARIANT, Variant


def _image(**changes: Any) -> Image:
    fields: dict[str, Any] = {
        "id": "65f000000000000000000001",
        "key": "alice/0123456789abcdef0123456789abcdef.png",
        "owner": "alice",
        "filename": 'Zoë "quoted" \u2028.png',
        "content_type": "image/png",
        "size": 48213,
        "width": 640,
        "height": 480,
        "content_md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "kind": "gallery",
        "is_primary": True,
        "caption": "a caption",
        "tags": ["a", "b"],
        "usage_count": 3,
        "last_used_at": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "created_at": datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
        "updated_at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "visibility": "public",
        "public_token": "pt_0123456789abcdef",
    }
    return Image(**{**fields, **changes})


IMAGES = [
    _image(),
    # Everything optional empty, and times naive (read as UTC) or in another zone.
    _image(
        width=None,
        height=None,
        content_md5=None,
        etag=None,
        caption=None,
        tags=[],
        is_primary=False,
        last_used_at=None,
        created_at=datetime(2024, 1, 2, 3, 4, 5),
        updated_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
        visibility="private",
        public_token=None,
    ),
    # Variants in every state: ready (every field), pending (state alone), failed (its error;
    # a message may be missing).
    _image(
        variants={
            "thumb": Variant(
                "ready", "alice/v/thumb.webp", "image/webp", 320, 240, 9000, "d1", None, None
            ),
            "medium": PENDING_VARIANT,
            "poster": Variant("failed", error_code="undecodable", error_message="truncated"),
            "Zoë": Variant("failed", width=0, error_code="too_many_pixels"),
        }
    ),
]
EXPIRES = datetime(2024, 1, 2, 4, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def links() -> Iterator[None]:
    """Answers are dumped where their links are known (as json_answer does)."""
    with schemas.LINKS(schemas.Links(lambda: "https://broker.example/")):
        yield


def _bytes(value: Any) -> str:
    # As the views answer: field order kept, not sorted.
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("image", IMAGES)
def test_an_image_of_a_listing(image: Image) -> None:
    listed = schemas.ListedImageSchema()
    assert ("public_url" in schemas.dump_listed_image(image)) is True  # computed, never absent
    assert _bytes(schemas.dump_listed_image(image)) == _bytes(listed.dump(image))
    signed = SignedImage(
        **vars(image), url="https://s3.example/a?X-Amz-Signature=1", expires_at=EXPIRES
    )
    assert "url" in schemas.dump_listed_image(signed)
    assert _bytes(schemas.dump_listed_image(signed)) == _bytes(listed.dump(signed))


@pytest.mark.parametrize("next_cursor", [None, "eyJzIjoibmV3ZXN0In0"])
def test_a_page_signed_or_not(next_cursor: str | None) -> None:
    signed = [
        SignedImage(**vars(image), url="https://s3.example/x", expires_at=EXPIRES)
        for image in IMAGES
    ]
    for images in (IMAGES, signed, []):
        page = Page(list(images), next_cursor)
        assert _bytes(schemas.dump_image_page(page)) == _bytes(schemas.image_page.dump(page))


def test_signed_urls_one_and_many() -> None:
    one = SignedUrl("https://s3.example/a?X-Amz-Signature=1", EXPIRES)
    assert _bytes(schemas.dump_signed_url(one)) == _bytes(schemas.signed_url_response.dump(one))
    many = {"65f000000000000000000001": one, "65f000000000000000000002": SignedUrl("u", EXPIRES)}
    assert _bytes(schemas.dump_signed_urls(many)) == _bytes(
        schemas.signed_urls_response.dump({"urls": many})
    )


def test_the_broker_address_is_worked_out_only_for_an_answer_with_a_link() -> None:
    asked: list[str] = []

    def base() -> str:
        asked.append("asked")
        return "https://broker.example/"

    with schemas.LINKS(schemas.Links(base)):
        schemas.dump_signed_url(SignedUrl("https://s3.example/a", EXPIRES))
        assert asked == []
        shared = [image for image in IMAGES if image.public_token is not None]
        assert shared, "the fixture has a public image"
        dumped = schemas.dump_image_page(Page(shared + shared, None))
        assert dumped["images"][0]["public_url"].startswith("https://broker.example/p/")
        assert asked == ["asked"]  # once per answer, however many links


def test_a_variant_is_dumped_as_its_schema_dumps_it() -> None:
    variants = IMAGES[-1].variants
    assert schemas.dump_listed_image(IMAGES[-1])["variants"]["medium"] == {"state": "pending"}
    dump_variant = schemas.plain_dump(schemas.VariantSchema())
    for variant in variants.values():
        assert _bytes(dump_variant(variant)) == _bytes(schemas.VariantSchema().dump(variant))
    # A missing value is written as marshmallow writes it (null), never dumped as a variant.
    odd = _image(variants={"thumb": None, "medium": PENDING_VARIANT})
    dump_image = schemas.plain_dump(schemas.ImageSchema())
    assert _bytes(dump_image(odd)) == _bytes(schemas.ImageSchema().dump(odd))


def test_hooks_a_plain_dump_cannot_call_leave_the_dump_to_marshmallow() -> None:
    class Original(schemas.SignedUrlResponse):
        @post_dump(pass_original=True)
        def _mark(self, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
            return {**data, "seen": type(original).__name__}

    class Before(schemas.SignedUrlResponse):
        @pre_dump
        def _swap(self, obj: Any, **kwargs: Any) -> Any:
            return SignedUrl("swapped", obj.expires_at)

    class Whole(schemas.SignedUrlResponse):
        @post_dump(pass_collection=True)
        def _envelope(self, data: Any, many: bool, **kwargs: Any) -> Any:
            return {"wrapped": data}

    one = SignedUrl("u", EXPIRES)
    for schema in (Original(), Before(), Whole()):
        assert schemas.plain_dump(schema) == schema.dump
        assert schemas.plain_dump(schema)(one) == schema.dump(one)


def test_a_post_dump_hook_of_one_object_runs_on_the_plain_dump() -> None:
    class Upper(schemas.SignedUrlResponse):
        @post_dump
        def _upper(self, data: dict[str, Any], many: bool, **kwargs: Any) -> dict[str, Any]:
            assert many is False
            return {key: value.upper() for key, value in data.items()}

        @pre_load  # a load hook changes nothing a dump writes
        def _strip(self, data: Any, **kwargs: Any) -> Any:
            return data

    one = SignedUrl("https://s3.example/a", EXPIRES)
    schema = Upper()
    assert schemas.plain_dump(schema) != schema.dump
    assert schemas.plain_dump(schema)(one) == schema.dump(one)
    assert schemas.plain_dump(schema)(one)["url"] == "HTTPS://S3.EXAMPLE/A"


def test_a_map_of_nested_lists_is_dumped_by_marshmallow_itself() -> None:
    class Lists(schemas.SignedUrlResponse):
        groups = fields.Dict(
            keys=fields.String(), values=fields.Nested(schemas.VariantSchema(many=True))
        )

    class Carrying(SignedUrl):
        groups: ClassVar[dict[str, list[Variant]]] = {"a": [PENDING_VARIANT, Variant("failed")]}

    carrying = Carrying("u", EXPIRES)
    assert schemas.plain_dump(Lists())(carrying) == Lists().dump(carrying)
    assert schemas.plain_dump(Lists())(carrying)["groups"]["a"][0] == {"state": "pending"}


def test_a_field_added_to_a_schema_is_dumped_by_marshmallow_itself() -> None:
    class WithExtra(schemas.SignedUrlResponse):
        extra = fields.Dict(keys=fields.String(), values=fields.Integer())

    class Carrying(SignedUrl):
        extra: ClassVar[dict[str, int]] = {"n": 1}

    carrying = Carrying("u", EXPIRES)
    assert schemas.plain_dump(WithExtra())(carrying) == WithExtra().dump(carrying)


def _stamp_as_computed(value: datetime) -> str:
    # What utc_iso wrote before it remembered stamps: the reference it must keep writing.
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_remembered_expiry_stamps_are_the_ones_computed() -> None:
    # Around a second boundary, microseconds truncated to milliseconds, asked twice each (the
    # second answer comes from the memo) and in every order.
    edge = datetime(2026, 11, 30, 5, 59, 59, tzinfo=UTC)
    times = [edge + timedelta(microseconds=us) for us in (0, 999, 999_000, 999_999, 1_000_000)]
    times += [edge + timedelta(seconds=1, microseconds=1), edge.replace(year=1999)]
    for value in times + times[::-1] + times:
        assert schemas.utc_iso(value) == _stamp_as_computed(value)
    assert schemas.utc_iso(times[3]) == "2026-11-30T05:59:59.999Z"
    assert schemas.utc_iso(times[4]) == "2026-11-30T06:00:00.000Z"


def test_stamps_of_times_outside_utc_are_never_mixed_up() -> None:
    # 01:30 happens twice in New York when DST ends: equal as times of one zone, yet two
    # instants; a naive time is taken as UTC, and one in another zone is converted.
    new_york = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)
    second = first.replace(fold=1)
    values = [first, second, first.replace(tzinfo=None), datetime(2026, 11, 1, 1, 30, tzinfo=UTC)]
    for value in values + values:
        assert schemas.utc_iso(value) == _stamp_as_computed(value)
    assert schemas.utc_iso(first) != schemas.utc_iso(second)


def test_the_stamp_memo_stays_bounded_and_right_when_full() -> None:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    for n in range(3 * 1024):
        value = start + timedelta(milliseconds=n)
        assert schemas.utc_iso(value) == _stamp_as_computed(value)
        assert len(schemas._UTC_STAMPS) <= schemas._UTC_STAMPS_SIZE
