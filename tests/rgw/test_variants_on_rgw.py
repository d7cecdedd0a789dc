"""Variants on a real S3 (Ceph RGW): what the worker stores is what the broker chose, what a
signed URL serves is the variant (upright, small, WebP, without a byte of metadata), every kind
of original the broker accepts comes out displayable or ``failed`` (never half a picture), and a
delete at any moment of a job leaves no variant object behind.

Pictures are downloaded through the broker's own signed URLs and decoded with Pillow, which
knows nothing of libvips: what a browser would get.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from broker.bucket_policy import setup_bucket
from broker.domain import PENDING_TAG, STATE_TAG, utcnow
from broker.extension import Broker
from broker.variants import records, service
from broker.variants.sandbox import RenderSandbox
from tests.support.apps import broker_of
from tests.support.tokens import auth
from tests.support.upload import confirm, pending_upload
from tests.support.workers import (
    bucket_keys,
    download,
    drain,
    image_of,
    signed,
    upload,
)
from tests.variants import craft

pytestmark = pytest.mark.s3

EVERY_TYPE = "image/jpeg,image/png,image/gif,image/webp,image/avif"


@pytest.fixture
def app(make_rgw_app: Callable[..., Flask]) -> Flask:
    """The broker on RGW, its bucket set up as an operator would (policy, lifecycle, CORS)."""
    built = make_rgw_app(BROKER_ALLOWED_TYPES=EVERY_TYPE)
    broker = broker_of(built)
    assert all(step.outcome != "failed" for step in setup_bucket(broker.bucket, broker.settings))
    return built


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def picture(url: str) -> tuple[Image.Image, bytes, Any]:
    """Download a signed URL; the decoded picture, its bytes and the response."""
    response = download(url)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image, response.content, response


def rgb_at(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    """The colour of one pixel."""
    red, green, blue = image.convert("RGB").getpixel((x, y))  # type: ignore[misc]
    return red, green, blue


def alpha_at(image: Image.Image, x: int, y: int) -> int:
    """The opacity of one pixel."""
    return int(image.getchannel("A").getpixel((x, y)))  # type: ignore[arg-type]


def assert_no_metadata(data: bytes) -> None:
    """No EXIF, GPS, XMP, IPTC, ICC or comment, and none of the camera's strings."""
    for marker in craft.METADATA_MARKERS + craft.SECRETS:
        assert marker not in data, marker
    assert set(craft.webp_chunks(data)) <= {"VP8 ", "VP8L", "VP8X", "ALPH", "ANIM", "ANMF"}


# ---- the camera photo --------------------------------------------------------------------------


def test_an_orientation_6_photo_with_gps_gives_upright_webp_without_metadata(
    app: Flask, client: FlaskClient
) -> None:
    # Stored 2400x1600, red on the left: upright it is 1600x2400 with red on top.
    original = craft.camera_jpeg(2400, 1600, orientation=6)
    assert b"SECRETGPSAREA" in original and b"Exif" in original
    image = upload(client, original, filetype="image/jpeg", filename="IMG_0001.JPG")
    # Recorded as displayed (confirm reads the orientation from the header too).
    assert (image["width"], image["height"]) == (1600, 2400)
    drain(app)
    variants = image_of(client, image["id"])["variants"]
    expected = {"thumb": (213, 320), "medium": (853, 1280)}
    for name, size in expected.items():
        assert (variants[name]["width"], variants[name]["height"]) == size
        answer = signed(client, image["id"], variant=name)
        assert answer["variant"] == name
        shown, data, response = picture(answer["url"])
        # What the bucket serves through the signed URL: the variant's type, a .webp name.
        assert response.headers["Content-Type"] == "image/webp"
        assert response.headers["Content-Disposition"] == 'inline; filename="IMG_0001.webp"'
        assert shown.format == "WEBP"
        assert shown.size == size
        assert len(data) == variants[name]["size"]
        assert_no_metadata(data)
        assert "exif" not in shown.info and "icc_profile" not in shown.info
        top = rgb_at(shown, size[0] // 2, size[1] // 4)
        bottom = rgb_at(shown, size[0] // 2, 3 * size[1] // 4)
        assert top[0] > 150 and top[2] < 100, top  # red on top: the EXIF turn was applied
        assert bottom[2] > 150 and bottom[0] < 100, bottom


def test_variant_objects_carry_the_brokers_headers_and_no_tag(
    app: Flask, client: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    image = upload(client, craft.plain(900, 600, "jpeg"), filetype="image/jpeg")
    drain(app)
    keys = bucket_keys(app, records.KEY_PREFIX)
    assert len(keys) == 2
    for key in keys:
        head = s3.head_object(Bucket=rgw_bucket, Key=key)
        assert head["ContentType"] == "image/webp"
        assert head["CacheControl"] == records.STORED_CACHE_CONTROL
        assert head["Metadata"] == {}
        # No tag at all: the lifecycle rule below expires only objects tagged pending.
        assert s3.get_object_tagging(Bucket=rgw_bucket, Key=key)["TagSet"] == []
    # The original, confirmed, is tagged so; the only expiring rule needs the pending tag.
    original_tags = s3.get_object_tagging(Bucket=rgw_bucket, Key=image["key"])["TagSet"]
    assert {(t["Key"], t["Value"]) for t in original_tags} == {(STATE_TAG, "confirmed")}
    rules = s3.get_bucket_lifecycle_configuration(Bucket=rgw_bucket)["Rules"]
    expiring = [rule for rule in rules if "Expiration" in rule]
    assert expiring and all(
        rule["Filter"] == {"Tag": {"Key": STATE_TAG, "Value": PENDING_TAG}} for rule in expiring
    )


# ---- every kind of original --------------------------------------------------------------------


def test_alpha_stays_transparent(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.rgba_png(800, 400), filetype="image/png")
    drain(app)
    shown, _, _ = picture(signed(client, image["id"], variant="thumb")["url"])
    assert shown.size == (320, 160) and shown.mode == "RGBA"
    assert alpha_at(shown, 40, 80) == 255  # the opaque green half
    assert alpha_at(shown, 280, 80) == 0  # the transparent half


def test_an_animated_gif_stays_animated(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.animated("gif", 480, 240, frames=3), filetype="image/gif")
    drain(app)
    shown, _, _ = picture(signed(client, image["id"], variant="thumb")["url"])
    assert shown.size == (320, 160)
    assert getattr(shown, "n_frames", 1) == 3
    strongest = []
    for frame in range(3):
        shown.seek(frame)
        colour = rgb_at(shown, 160, 80)
        strongest.append(colour.index(max(colour)))
    assert strongest == [0, 1, 2]  # red, green, blue: every frame, in order


def test_an_avif_original_becomes_webp_for_every_browser(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.avif(1000, 500), filetype="image/avif", filename="pic.avif")
    assert image["key"].endswith(".avif")
    assert (image["width"], image["height"]) == (1000, 500)
    drain(app)
    answer = signed(client, image["id"], variant="thumb")
    shown, _, response = picture(answer["url"])
    assert response.headers["Content-Type"] == "image/webp"
    assert shown.size == (320, 160)


def test_a_40_megapixel_original_renders(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.large_png(8000, 5000), filetype="image/png")
    drain(app)
    variants = image_of(client, image["id"])["variants"]
    assert (variants["medium"]["width"], variants["medium"]["height"]) == (1280, 800)
    assert (variants["thumb"]["width"], variants["thumb"]["height"]) == (320, 200)


def test_a_one_pixel_original_is_not_enlarged(app: Flask, client: FlaskClient) -> None:
    image = upload(client, craft.plain(1, 1, "png"), filetype="image/png")
    drain(app)
    shown, _, _ = picture(signed(client, image["id"], variant="medium")["url"])
    assert shown.size == (1, 1)


@pytest.fixture
def worker_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="broker.variants.worker")
    return caplog


def job_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The worker's one line per job, as its fields."""
    return [vars(r) for r in caplog.records if getattr(r, "outcome", None) is not None]


def test_a_truncated_original_fails_and_the_original_still_serves(
    app: Flask, client: FlaskClient, worker_log: pytest.LogCaptureFixture
) -> None:
    whole = craft.camera_jpeg(1600, 1200)
    cut = whole[: len(whole) * 2 // 3]  # the header is whole: confirm accepts it
    image = upload(client, cut, filetype="image/jpeg")
    drain(app)
    variants = image_of(client, image["id"])["variants"]
    assert {v["state"] for v in variants.values()} == {"failed"}
    assert {v["error"]["code"] for v in variants.values()} == {"undecodable"}
    answer = signed(client, image["id"], variant="thumb")
    assert answer["variant"] == "original"
    assert download(answer["url"]).content == cut
    assert bucket_keys(app, records.KEY_PREFIX) == []
    (line,) = job_lines(worker_log)
    assert line["outcome"] == "failed" and line["attempt"] == 1


def test_a_decompression_bomb_fails_fast_with_bounded_memory(
    make_rgw_app: Callable[..., Flask], worker_log: pytest.LogCaptureFixture
) -> None:
    # 36 Mpx claimed over 1 KiB of zeros: within BROKER_MAX_PIXELS, so confirm takes it.
    app = make_rgw_app(BROKER_VARIANT_MEMORY_MB="512")
    client = app.test_client()
    bomb = craft.png_bomb(6000, 6000)
    assert len(bomb) < 200
    image = upload(client, bomb, filetype="image/png")
    summary = drain(app)
    assert summary["failed"] == 1
    variants = image_of(client, image["id"])["variants"]
    assert {v["error"]["code"] for v in variants.values()} <= {"undecodable", "memory_limit"}
    (line,) = job_lines(worker_log)
    assert line["attempt"] == 1  # failed at once, never retried
    assert line["render_peak_rss_mb"] is not None and line["render_peak_rss_mb"] < 512


def test_a_bomb_over_the_pixel_limit_never_gets_in(client: FlaskClient) -> None:
    grant = pending_upload(client, craft.png_bomb(50000, 50000), filename="b.png")
    refused = confirm(client, grant["key"])
    assert refused.status_code == 422 and "pixels" in refused.json["error"]["message"]


def test_an_original_replaced_behind_the_records_back_is_not_rendered(
    app: Flask, client: FlaskClient, s3: Any, rgw_bucket: str
) -> None:
    # The conditional GET (If-Match: the recorded ETag) is what refuses it: RGW answers 412.
    image = upload(client, craft.plain(300, 200, "jpeg"), filetype="image/jpeg")
    s3.put_object(Bucket=rgw_bucket, Key=image["key"], Body=craft.plain(300, 200, "png"))
    drain(app)
    variants = image_of(client, image["id"])["variants"]
    assert {v["error"]["code"] for v in variants.values()} == {"original_changed"}
    assert bucket_keys(app, records.KEY_PREFIX) == []


# ---- a delete at any moment of a job -------------------------------------------------------------


class DeleteDuring:
    """Runs one job with the real sandbox and bucket, deleting the image through the API at a
    chosen step: after the render (before any PUT), after the PUTs (before the record)."""

    def __init__(self, app: Flask, client: FlaskClient, image: dict[str, Any], step: str) -> None:
        self.app, self.client, self.image, self.step = app, client, image, step
        self.deleted = False

    def delete(self) -> None:
        if not self.deleted:
            answer = self.client.delete(f"/images/{self.image['id']}", headers=auth())
            assert answer.status_code == 204
            self.deleted = True

    def run(self, broker: Broker, tmp_path: Path) -> service.Outcome:
        job = broker.db.variant_jobs.claim(utcnow(), 60, "test")
        assert job is not None
        with RenderSandbox(broker.settings.variant_settings) as sandbox:

            def render(path: Path, content_type: str, specs: Any) -> Any:
                made = sandbox.render(path, expected_type=content_type, specs=specs)
                if self.step == "rendered":
                    self.delete()
                return made

            def keep_alive() -> None:
                # Called between every step: once both variants are in the bucket, the next
                # step is the record.
                stored = bucket_keys(self.app, records.KEY_PREFIX)
                if self.step == "stored" and len(stored) == 2:
                    self.delete()

            return service.make_variants(broker, job, render, keep_alive, tmp_path)


@pytest.mark.parametrize("step", ["rendered", "stored"])
def test_a_delete_during_processing_leaves_no_variant_behind(
    app: Flask, client: FlaskClient, step: str, tmp_path: Path
) -> None:
    image = upload(client, craft.plain(1600, 900, "jpeg"), filetype="image/jpeg")
    during = DeleteDuring(app, client, image, step)
    outcome = during.run(broker_of(app), tmp_path)
    assert during.deleted
    assert outcome.result == "gone"
    assert bucket_keys(app) == []  # neither the original nor a variant
    assert list(broker_of(app).db.variant_jobs.collection.find({})) == []


def test_a_delete_after_processing_takes_the_variants_along(
    app: Flask, client: FlaskClient
) -> None:
    image = upload(client, craft.plain(1600, 900, "jpeg"), filetype="image/jpeg")
    drain(app)
    assert len(bucket_keys(app, records.KEY_PREFIX)) == 2
    assert client.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
    assert bucket_keys(app) == []


def test_a_killed_workers_leftovers_go_with_the_next_claim(app: Flask, client: FlaskClient) -> None:
    # A worker stored the variants and died before recording them; the user deleted the image
    # in between (its delete listed the prefix before the worker's PUTs landed).
    image = upload(client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg")
    broker = broker_of(app)
    assert client.delete(f"/images/{image['id']}", headers=auth()).status_code == 204
    leftover = records.variant_prefix(image["key"]) + "thumb.0badc0de.webp"
    broker.bucket.put_derived(leftover, b"RIFF", content_type="image/webp", cache_control="x")
    broker.db.variant_jobs.enqueue(image["id"], image["key"], utcnow())
    summary = drain(app)
    assert summary["gone"] == 1
    assert bucket_keys(app) == []


def test_the_sweeper_removes_variants_whose_image_is_gone(app: Flask, client: FlaskClient) -> None:
    live = upload(client, craft.plain(800, 600, "jpeg"), filetype="image/jpeg")
    drain(app)
    broker = broker_of(app)
    kept = bucket_keys(app, records.KEY_PREFIX)
    # Objects a killed worker left with no record and no job: an image long deleted.
    gone_key = "alice/" + "0" * 32 + ".jpg"
    orphans = [
        records.variant_prefix(gone_key) + name for name in ("thumb.1.webp", "medium.1.webp")
    ]
    for key in orphans:
        broker.bucket.put_derived(key, b"RIFF", content_type="image/webp", cache_control="x")
    assert service.sweep_orphans(broker) == 0  # too young to judge: a worker may be recording
    assert service.sweep_orphans(broker, grace=timedelta(0)) == 2
    assert bucket_keys(app, records.KEY_PREFIX) == kept
    assert image_of(client, live["id"])["variants"]["thumb"]["state"] == "ready"


@pytest.fixture(autouse=True)
def _no_leftover_workdirs(tmp_path: Path) -> Iterator[None]:
    yield
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("original-")]
