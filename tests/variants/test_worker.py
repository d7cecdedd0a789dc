"""The variant worker end to end on the test services (moto): confirm queues, ``worker --once``
makes and records, the API shows and signs what is ready, catch-up finds what was missed.

What the bucket itself enforces (headers, tags, the pictures' bytes) is proven on RGW in
tests/rgw/test_variants_on_rgw.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo import monitoring

from broker.variants import records
from tests.support.apps import broker_of
from tests.support.images import png_bytes
from tests.support.multipart import MULTIPART_MAX_BYTES, MiB, Multipart, padded_png
from tests.support.tokens import auth
from tests.support.upload import confirm
from tests.support.workers import (
    bucket_keys,
    drain,
    image_of,
    run_once,
    signed,
    upload,
)
from tests.variants import craft


def jobs_of(app: Flask) -> list[dict[str, Any]]:
    """The queue as stored."""
    return list(broker_of(app).db.variant_jobs.collection.find({}))


def query_of(url: str) -> dict[str, str]:
    """A signed URL's query parameters."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_confirm_queues_one_job_and_shows_every_variant_pending(
    app: Flask, client: FlaskClient
) -> None:
    image = upload(client, craft.plain(640, 480, "jpeg"), filetype="image/jpeg")
    assert image["variants"] == {"thumb": {"state": "pending"}, "medium": {"state": "pending"}}
    assert [(str(job["_id"]), job["state"]) for job in jobs_of(app)] == [(image["id"], "queued")]


def test_worker_once_makes_and_records_every_variant(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.plain(1600, 1200, "jpeg"), filetype="image/jpeg")
    summary = drain(app)
    assert summary["made"] == 1 and summary["failed"] == 0
    variants = image_of(client, image["id"])["variants"]
    assert variants["thumb"]["state"] == "ready"
    assert (variants["thumb"]["width"], variants["thumb"]["height"]) == (320, 240)
    assert (variants["medium"]["width"], variants["medium"]["height"]) == (1280, 960)
    for variant in variants.values():
        assert variant["content_type"] == "image/webp"
        assert variant["size"] > 0
        assert set(variant) == {"state", "content_type", "width", "height", "size"}
    # Stored under keys derived from the original's; the queue is empty again.
    stem = image["key"].rsplit(".", 1)[0]
    keys = bucket_keys(app, records.KEY_PREFIX)
    assert sorted(key.split("/")[-1].split(".")[0] for key in keys) == ["medium", "thumb"]
    assert all(key.startswith(f"variants.v1/{stem}/") and key.endswith(".webp") for key in keys)
    assert jobs_of(app) == []


def test_a_second_run_finds_nothing_to_do(app: Flask, client: FlaskClient) -> None:
    upload(client, craft.plain(400, 300, "jpeg"), filetype="image/jpeg")
    assert drain(app)["made"] == 1
    again = drain(app)
    assert (again["made"], again["caught_up"], again["failed"]) == (0, 0, 0)


def test_a_confirm_finishing_a_crashed_one_queues_only_what_is_missing(
    app: Flask, client: FlaskClient
) -> None:
    # A confirm that recorded the image but died before closing the upload is finished by
    # the next confirm, which calls the same queueing step; by then the variants are made.
    image = upload(client, craft.plain(400, 300, "jpeg"), filetype="image/jpeg")
    assert drain(app)["made"] == 1
    uploads = broker_of(app).db.uploads.collection
    assert uploads.update_one({"key": image["key"]}, {"$set": {"state": "pending"}}).modified_count
    finished = confirm(client, image["key"])
    assert finished.status_code == 200, finished.json
    assert finished.json["image"]["variants"]["thumb"]["state"] == "ready"
    assert jobs_of(app) == []


def test_a_multipart_upload_is_queued_and_made_like_a_confirmed_one(
    make_app: Callable[..., Flask],
) -> None:
    # Complete records through the same step as confirm, which queues the variants.
    app = make_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES)
    flow = Multipart(app.test_client(), padded_png(11 * MiB, 640, 480)).created(part_size=5 * MiB)
    flow.send()
    completed = flow.complete()
    assert completed.status_code == 201, completed.json
    image = completed.json["image"]
    assert image["variants"] == {"thumb": {"state": "pending"}, "medium": {"state": "pending"}}
    assert [str(job["_id"]) for job in jobs_of(app)] == [image["id"]]
    assert drain(app)["made"] == 1
    thumb = image_of(app.test_client(), image["id"])["variants"]["thumb"]
    assert (thumb["state"], thumb["width"], thumb["height"]) == ("ready", 320, 240)


def test_small_images_are_never_enlarged(app: Flask, client: FlaskClient) -> None:
    image = upload(client, png_bytes(1, 1), filetype="image/png")
    drain(app)
    variants = image_of(client, image["id"])["variants"]
    assert {name: (v["width"], v["height"]) for name, v in variants.items()} == {
        "thumb": (1, 1),
        "medium": (1, 1),
    }


# ---- signing ---------------------------------------------------------------------------------


def test_a_pending_variant_signs_the_original_and_says_so(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg")
    answer = signed(client, image["id"], variant="thumb")
    assert answer["variant"] == "original"
    assert urlsplit(answer["url"]).path.endswith(image["key"])
    assert query_of(answer["url"])["response-content-type"] == "image/jpeg"


def test_a_ready_variant_is_signed_with_its_own_type_and_name(
    app: Flask, client: FlaskClient
) -> None:
    image = upload(
        client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg", filename="Holiday.jpg"
    )
    signed(client, image["id"], variant="thumb")  # cached while pending: must not stick
    drain(app)
    answer = signed(client, image["id"], variant="thumb")
    assert answer["variant"] == "thumb"
    query = query_of(answer["url"])
    assert query["response-content-type"] == "image/webp"
    assert query["response-content-disposition"] == 'inline; filename="Holiday.webp"'
    assert "/variants.v1/" in urlsplit(answer["url"]).path
    # Without a variant, or with "original", the original as before.
    for plain_query in ({}, {"variant": "original"}):
        original = signed(client, image["id"], **plain_query)
        assert original["variant"] == "original"
        assert query_of(original["url"])["response-content-type"] == "image/jpeg"


def test_variant_urls_are_cache_stable_like_originals(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg")
    drain(app)
    first = signed(client, image["id"], variant="thumb")["url"]
    assert signed(client, image["id"], variant="thumb")["url"] == first
    assert signed(client, image["id"], variant="medium")["url"] != first
    assert signed(client, image["id"])["url"] != first


def test_every_form_of_signing_takes_a_variant(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg")
    drain(app)
    by_key = client.get(
        "/images/signed-url",
        query_string={"key": image["key"], "variant": "medium"},
        headers=auth(),
    )
    assert by_key.status_code == 200 and by_key.json["variant"] == "medium"
    batch = client.post(
        "/images/signed-urls", json={"ids": [image["id"]], "variant": "thumb"}, headers=auth()
    )
    assert batch.status_code == 200
    assert batch.json["urls"][image["id"]]["variant"] == "thumb"
    content = client.get(f"/images/{image['id']}/content?variant=thumb", headers=auth())
    assert content.status_code == 302
    assert query_of(content.headers["Location"])["response-content-type"] == "image/webp"
    listing = client.get("/images?sign=1&variant=thumb", headers=auth())
    assert listing.status_code == 200
    (listed,) = listing.json["images"]
    assert listed["variant"] == "thumb"
    assert query_of(listed["url"])["response-content-type"] == "image/webp"
    plain_listing = client.get("/images?sign=1", headers=auth()).json["images"][0]
    assert plain_listing["variant"] == "original"


def test_a_public_link_leads_to_the_variant_once_it_is_made(
    app: Flask, client: FlaskClient
) -> None:
    image = upload(client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg", public=True)
    link = urlsplit(image["public_url"]).path
    before = client.get(link, query_string={"variant": "thumb"})
    assert before.status_code == 302 and image["key"] in before.headers["Location"]
    assert drain(app)["made"] == 1
    # The link's cached target still shows thumb pending: it is read again, not trusted.
    after = client.get(link, query_string={"variant": "thumb"})
    assert after.status_code == 302 and "/thumb." in urlsplit(after.headers["Location"]).path
    original = client.get(link, query_string={"variant": "original"})
    assert image["key"] in original.headers["Location"]


@pytest.mark.parametrize(
    "ask",
    [
        lambda c, i: c.get(f"/images/{i['id']}/signed-url?variant=huge", headers=auth()),
        lambda c, i: c.get(f"/images/{i['id']}/content?variant=huge", headers=auth()),
        lambda c, i: c.get(f"/images/signed-url?key={i['key']}&variant=huge", headers=auth()),
        lambda c, i: c.post(
            "/images/signed-urls", json={"ids": [i["id"]], "variant": "huge"}, headers=auth()
        ),
        lambda c, i: c.get("/images?sign=1&variant=huge", headers=auth()),
        lambda c, i: c.get(f"/images/{i['id']}/signed-url?variant=" + "x" * 40, headers=auth()),
    ],
    ids=["by-id", "content", "by-key", "batch", "listing", "too-long"],
)
def test_an_unknown_variant_is_a_400_naming_variant(
    client: FlaskClient, ask: Callable[[FlaskClient, dict[str, Any]], Any]
) -> None:
    image = upload(client, craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    answer = ask(client, image)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "validation_error"
    assert "variant" in answer.json["error"]["details"]


class _Finds(monitoring.CommandListener):
    """Counts the queries sent to the images collection."""

    def __init__(self) -> None:
        self.finds = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "aggregate", "count"):
            self.finds += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_signed_listing_of_variants_is_one_query_per_page(
    make_app: Callable[..., Flask],
) -> None:
    finds = _Finds()
    monitoring.register(finds)  # for clients created from now on: the app's
    app = make_app()
    client = app.test_client()
    for _ in range(5):
        upload(client, craft.plain(300, 200, "jpeg"), filetype="image/jpeg")
    drain(app)
    counts = {}
    for query in ("sign=1", "sign=1&variant=thumb"):
        before = finds.finds
        page = client.get(f"/images?{query}&limit=5", headers=auth())
        assert page.status_code == 200 and len(page.json["images"]) == 5
        counts[query] = finds.finds - before
    assert counts["sign=1&variant=thumb"] == counts["sign=1"] == 1
    assert {image["variant"] for image in page.json["images"]} == {"thumb"}


# ---- failures -------------------------------------------------------------------------------


def truncated_png() -> bytes:
    """A PNG whose header is whole (confirm accepts it) and whose pixel data is cut short."""
    whole = craft.large_png(600, 400)
    return whole[: len(whole) // 2] + whole[-12:]  # cut, then the IEND chunk


def test_a_truncated_original_fails_at_once_and_still_serves(
    app: Flask, client: FlaskClient
) -> None:
    image = upload(client, truncated_png(), filetype="image/png")
    summary = drain(app)
    assert (summary["failed"], summary["made"], summary["retried"]) == (1, 0, 0)
    variants = image_of(client, image["id"])["variants"]
    for variant in variants.values():
        assert variant["state"] == "failed"
        assert variant["error"]["code"] == "undecodable"
        assert "/" not in variant["error"]["message"].split(":")[0]  # no temp path
    answer = signed(client, image["id"], variant="thumb")
    assert answer["variant"] == "original"
    assert bucket_keys(app, records.KEY_PREFIX) == []
    assert jobs_of(app) == []


def test_a_missing_original_fails_its_variants(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    broker_of(app).bucket.delete(image["key"])
    drain(app)
    variants = image_of(client, image["id"])["variants"]
    assert {v["error"]["code"] for v in variants.values()} == {"original_missing"}


def test_transient_failures_are_retried_then_given_up_on(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(BROKER_VARIANT_MAX_ATTEMPTS="2", BROKER_VARIANT_RETRY_DELAY="0.001")
    client = app.test_client()
    image = upload(client, craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    jobs = broker_of(app).db.variant_jobs.collection
    # A worker that died mid-job twice (its lease ran out each time): the third claim gives up.
    past = datetime.now(UTC) - timedelta(minutes=5)
    jobs.update_one(
        {},
        {
            "$set": {
                "state": "running",
                "lease_until": past,
                "claim": "dead",
                "attempts": 2,
                "last_error": "crashed: the render process was killed (SIGKILL)",
            }
        },
    )
    summary = drain(app)
    assert summary["failed"] == 1
    variants = image_of(client, image["id"])["variants"]
    for variant in variants.values():
        assert variant["state"] == "failed"
        assert variant["error"]["code"] == "gave_up"
        assert "SIGKILL" in variant["error"]["message"]


# ---- off, on, changed -------------------------------------------------------------------------


def test_empty_variants_turn_the_feature_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(BROKER_VARIANTS="")
    client = app.test_client()
    image = upload(client, craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    assert image["variants"] == {}
    assert jobs_of(app) == []
    result = run_once(app)
    assert result.exit_code == 0
    assert "variants are off" in result.output
    answer = client.get(f"/images/{image['id']}/signed-url?variant=thumb", headers=auth())
    assert answer.status_code == 400
    assert signed(client, image["id"], variant="original")["variant"] == "original"


def test_enabling_variants_catches_up_on_the_library(make_app: Callable[..., Flask]) -> None:
    off = make_app(BROKER_VARIANTS="")
    client = off.test_client()
    images = [
        upload(client, craft.plain(500, 400, "jpeg"), filetype="image/jpeg") for _ in range(3)
    ]
    on = make_app(BROKER_MONGODB_DB=broker_of(off).settings.mongodb_db)
    on_client = on.test_client()
    # The API shows every configured name at once, pending until the worker has been.
    assert image_of(on_client, images[0]["id"])["variants"]["thumb"] == {"state": "pending"}
    summary = drain(on)
    assert (summary["caught_up"], summary["made"]) == (3, 3)
    for image in images:
        variants = image_of(on_client, image["id"])["variants"]
        assert {v["state"] for v in variants.values()} == {"ready"}


def test_a_new_variant_name_renders_only_what_is_missing(make_app: Callable[..., Flask]) -> None:
    first = make_app(BROKER_VARIANTS="thumb:320x320")
    client = first.test_client()
    image = upload(client, craft.plain(900, 600, "jpeg"), filetype="image/jpeg")
    drain(first)
    thumb_key = broker_of(first).db.images.for_variants(image["id"]).variants["thumb"].key
    second = make_app(
        BROKER_VARIANTS="thumb:320x320,square:100x100:cover",
        BROKER_MONGODB_DB=broker_of(first).settings.mongodb_db,
        BROKER_S3_BUCKET=broker_of(first).settings.s3_bucket,
    )
    summary = drain(second)
    assert (summary["caught_up"], summary["made"]) == (1, 1)
    stored = broker_of(second).db.images.for_variants(image["id"]).variants
    assert stored["thumb"].key == thumb_key  # not made again
    assert (stored["square"].width, stored["square"].height) == (100, 100)
    # A name no longer configured: its object goes, its entry too.
    third = make_app(
        BROKER_VARIANTS="square:100x100:cover",
        BROKER_MONGODB_DB=broker_of(first).settings.mongodb_db,
        BROKER_S3_BUCKET=broker_of(first).settings.s3_bucket,
    )
    drain(third)
    assert set(broker_of(third).db.images.for_variants(image["id"]).variants) == {"square"}
    assert [key.split("/")[-1].split(".")[0] for key in bucket_keys(third, "variants.v1/")] == [
        "square"
    ]
