"""Modern formats in: AVIF is accepted when the allowlist names it, checked at confirm by its
``ftyp`` brand and ``ispe`` size from the first 64 KiB; HEIC is refused with the reason (the
bundled libvips cannot decode HEVC), at presign and at start-up alike.

The AVIF's variants (rendered, signed, shown in every browser) are proven on RGW in
tests/rgw/test_variants_on_rgw.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from broker.settings import ConfigError, load_settings
from tests.support.envelope import assert_envelope
from tests.support.upload import confirm, pending_upload, presign, upload
from tests.variants import craft

WITH_AVIF = "image/jpeg,image/png,image/gif,image/webp,image/avif"


@pytest.fixture
def avif_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(BROKER_ALLOWED_TYPES=WITH_AVIF)


def test_an_avif_is_recorded_with_its_stored_size(avif_app: Flask) -> None:
    image = upload(
        avif_app.test_client(), craft.avif(1000, 500), filetype="image/avif", filename="a.avif"
    ).image
    assert (image["content_type"], image["width"], image["height"]) == ("image/avif", 1000, 500)
    assert image["key"].endswith(".avif") and image["filename"] == "a.avif"


def test_avif_is_refused_unless_the_allowlist_names_it(make_app: Callable[..., Flask]) -> None:
    answer = presign(make_app().test_client(), craft.avif(64, 64), filetype="image/avif")
    assert_envelope(answer, 415, "unsupported_type")


def test_an_avif_whose_items_claim_too_many_pixels_is_refused(avif_app: Flask) -> None:
    # A primary of 100x100 beside a (thumbnail, alpha, tile…) item claiming 9000x9000: the
    # largest claim counts, since a decoder may have to allocate it.
    lying = craft.heif_container(("avif", "mif1"), "av01", ((100, 100), (9000, 9000)))
    client = avif_app.test_client()
    grant = pending_upload(client, lying, filetype="image/avif", filename="l.avif")
    refused = confirm(client, grant["key"])
    assert_envelope(refused, 422, "upload_invalid")
    assert "pixels" in refused.json["error"]["message"]


@pytest.mark.parametrize(
    "container",
    [
        craft.heif_container(("heic", "mif1"), "hvc1", ((640, 480),), config=craft.hevc_config()),
        craft.heif_container(("mif1",), "hvc1", ((640, 480),)),
        craft.plain(64, 48, "png"),
    ],
    ids=["heic", "bare-heif", "png"],
)
def test_other_bytes_declared_as_avif_are_refused_at_confirm(
    avif_app: Flask, container: bytes
) -> None:
    client = avif_app.test_client()
    grant = pending_upload(client, container, filetype="image/avif", filename="x.avif")
    assert_envelope(confirm(client, grant["key"]), 422, "upload_invalid")


@pytest.mark.parametrize("filetype", ["image/heic", "image/heif"])
def test_heic_is_refused_at_presign_saying_why(avif_app: Flask, filetype: str) -> None:
    heic = craft.heif_container(("heic", "mif1"), "hvc1", ((64, 64),), config=craft.hevc_config())
    answer = presign(avif_app.test_client(), heic, filetype=filetype, filename="IMG_1.HEIC")
    error = assert_envelope(answer, 415, "unsupported_type")
    assert "HEVC" in error["message"]


def test_heic_in_the_allowlist_stops_the_start_saying_why() -> None:
    with pytest.raises(ConfigError, match=r"BROKER_ALLOWED_TYPES.*image/heic.*HEVC"):
        load_settings({"BROKER_ENV": "test", "BROKER_ALLOWED_TYPES": "image/jpeg,image/heic"})
