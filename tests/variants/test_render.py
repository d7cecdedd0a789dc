"""The renderer, in process: sizes, orientation, colour, alpha, animation, metadata, bad input.

Every input is made by the test (tests/variants/craft.py); every output is decoded again and
its bytes scanned, so a variant that carries metadata or the wrong pixels cannot pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pyvips

from broker.isobmff import read_heif_info
from broker.settings import load_settings
from broker.variants.render import RenderedVariant, RenderError, probe, render_variants
from broker.variants.spec import VariantSettings
from tests.variants import craft

MAX_PIXELS = 40_000_000
ALLOWED_WEBP_CHUNKS = {"VP8 ", "VP8L", "VP8X", "ALPH", "ANIM", "ANMF"}
# JPEG segments an encoder needs: APP0 (JFIF), DQT, SOF0-2, DHT, DRI, SOS. No APP1-15, no COM.
ALLOWED_JPEG_MARKERS = {0xE0, 0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDD, 0xDA}


def settings(**env: str) -> VariantSettings:
    """Variant settings from environment-style keyword arguments."""
    max_pixels = env.pop("MAX_PIXELS", str(MAX_PIXELS))
    return load_settings(
        {"BROKER_ENV": "test", "BROKER_MAX_PIXELS": max_pixels, **env}
    ).variant_settings


def by_name(variants: list[RenderedVariant]) -> dict[str, RenderedVariant]:
    """Variants keyed by name."""
    return {variant.name: variant for variant in variants}


def decode(variant: RenderedVariant) -> Any:
    """The variant decoded again (every frame), checked to be what it says it is."""
    options = {"n": -1} if variant.content_type == "image/webp" else {}
    image = pyvips.Image.new_from_buffer(variant.data, "", **options)
    loader = {"image/webp": "webpload", "image/avif": "heifload", "image/jpeg": "jpegload"}
    assert image.get("vips-loader").startswith(loader[variant.content_type])
    assert image.width == variant.width
    assert image.height == variant.height * variant.frames
    assert variant.size == len(variant.data) > 0
    return image


def colour_at(image: Any, x: int, y: int) -> list[float]:
    """The band values of one pixel."""
    return [round(v) for v in image.getpoint(x, y)]


def close(actual: list[float], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    """Whether a pixel matches the expected band values within lossy-coding noise."""
    return len(actual) == len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)
    )


def assert_no_metadata(variant: RenderedVariant) -> None:
    """No metadata block, by the format's structure, by decoded fields and by raw bytes."""
    data = variant.data
    for needle in (*craft.SECRETS, *craft.METADATA_MARKERS):
        assert needle not in data, f"{needle!r} found in {variant.name}"
    if variant.content_type == "image/webp":
        chunks = {chunk.split("/")[-1] for chunk in craft.webp_chunks(data)}
        assert chunks <= ALLOWED_WEBP_CHUNKS, chunks
    elif variant.content_type == "image/jpeg":
        assert set(craft.jpeg_markers(data)) <= ALLOWED_JPEG_MARKERS
    else:
        assert read_heif_info(data).primary_item_type == "av01"
        assert b"Exif" not in data and b"mime" not in data and b"prof" not in data
    fields = set(pyvips.Image.new_from_buffer(data, "").get_fields())
    assert not fields & {"exif-data", "xmp-data", "iptc-data", "icc-profile-data"}, fields


# --- the photo: orientation 6, GPS, every kind of metadata ---------------------------


def test_camera_photo_variants_are_upright_small_webp_without_metadata() -> None:
    original = craft.camera_jpeg(4000, 3000, orientation=6)
    assert b"SECRETGPSAREA" in original and b"<x:xmpmeta" in original  # the input has them
    variants = by_name(render_variants(original, settings()))
    thumb, medium = variants["thumb"], variants["medium"]
    # Stored 4000x3000; orientation 6 turns it upright to 3000x4000: width and height swap.
    assert (thumb.content_type, thumb.width, thumb.height) == ("image/webp", 240, 320)
    assert (medium.content_type, medium.width, medium.height) == ("image/webp", 960, 1280)
    for variant in (thumb, medium):
        assert_no_metadata(variant)
        image = decode(variant)
        # The stored left half (red) is the top once turned; the right half (blue) the bottom.
        assert close(colour_at(image, variant.width // 2, variant.height // 8), (220, 20, 20))
        assert close(colour_at(image, variant.width // 2, variant.height * 7 // 8), (20, 20, 220))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    original = craft.camera_jpeg(400, 300, orientation=orientation)
    (thumb,) = render_variants(original, settings(BROKER_VARIANTS="t:320x320"))
    assert (thumb.width, thumb.height) == ((240, 320) if orientation >= 5 else (320, 240))
    image = decode(thumb)
    # Where the stored left (red) half ends up: left/right for 1-4, top/bottom for 5-8.
    if orientation < 5:
        red_first = orientation in (1, 4)
        red = colour_at(image, 40, 120) if red_first else colour_at(image, 280, 120)
    else:
        red_first = orientation in (5, 6)
        red = colour_at(image, 120, 40) if red_first else colour_at(image, 120, 280)
    assert close(red, (220, 20, 20))


@pytest.mark.parametrize("fmt", ["webp", "avif", "jpeg"])
def test_no_metadata_survives_in_any_format(fmt: str) -> None:
    original = craft.camera_jpeg(600, 400, orientation=8, icc=craft.p3_profile())
    assert b"ICC_PROFILE" in original
    chosen = settings(BROKER_VARIANT_FORMAT=fmt, BROKER_VARIANT_EFFORT="0")
    for variant in render_variants(original, chosen):
        assert variant.content_type == f"image/{fmt}"
        # Stored 600x400, orientation 8: upright 400x600; medium is not enlarged.
        assert (variant.width, variant.height) == (
            (400, 600) if variant.name == "medium" else (213, 320)
        )
        assert_no_metadata(variant)
        decode(variant)


# --- colour ----------------------------------------------------------------------------------


def test_cmyk_jpeg_comes_out_srgb() -> None:
    red = craft.flat(200, 100, (230, 40, 40))
    cmyk = red.icc_transform("cmyk", input_profile="srgb")
    for original in (cmyk.jpegsave_buffer(Q=95), cmyk.jpegsave_buffer(Q=95, keep="none")):
        assert pyvips.Image.new_from_buffer(original, "").bands == 4
        (thumb,) = render_variants(original, settings(BROKER_VARIANTS="t:100x100"))
        image = decode(thumb)
        assert image.bands == 3 and image.interpretation == "srgb"
        assert close(colour_at(image, 50, 25), (230, 40, 40), tolerance=20)
        assert_no_metadata(thumb)


def test_wide_gamut_profile_is_converted_to_srgb() -> None:
    srgb = craft.flat(200, 100, (230, 40, 40))
    p3 = srgb.icc_transform("p3", input_profile="srgb")
    raw = colour_at(p3, 5, 5)
    assert not close(raw, (230, 40, 40), tolerance=8)  # P3 numbers differ: the test can fail
    (thumb,) = render_variants(bytes(p3.pngsave_buffer()), settings(BROKER_VARIANTS="t:100x100"))
    image = decode(thumb)
    assert close(colour_at(image, 50, 25), (230, 40, 40), tolerance=4)
    assert_no_metadata(thumb)


def test_sixteen_bit_png_becomes_eight_bit() -> None:
    deep = craft.flat(64, 64, (60000, 30000, 1000), "ushort")
    (thumb,) = render_variants(
        bytes(deep.pngsave_buffer()),
        settings(BROKER_VARIANTS="t:32x32"),
    )
    image = decode(thumb)
    assert image.format == "uchar"
    assert close(colour_at(image, 5, 5), (233, 117, 4), tolerance=6)


def test_greyscale_png() -> None:
    grey = (pyvips.Image.black(64, 48) + 100).cast("uchar").copy(interpretation="b-w")
    (thumb,) = render_variants(bytes(grey.pngsave_buffer()), settings(BROKER_VARIANTS="t:32x32"))
    assert close(colour_at(decode(thumb), 5, 5)[:3], (100, 100, 100), tolerance=3)


# --- alpha -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_alpha_is_kept_in_webp_and_avif(fmt: str) -> None:
    chosen = settings(
        BROKER_VARIANTS="t:100x100", BROKER_VARIANT_FORMAT=fmt, BROKER_VARIANT_EFFORT="0"
    )
    (thumb,) = render_variants(craft.rgba_png(200, 100), chosen)
    image = decode(thumb)
    assert image.hasalpha()
    assert colour_at(image, 80, 25)[3] == 0
    assert close(colour_at(image, 20, 25), (30, 200, 30, 255))


def test_jpeg_flattens_alpha_onto_white() -> None:
    chosen = settings(BROKER_VARIANTS="t:100x100", BROKER_VARIANT_FORMAT="jpeg")
    (thumb,) = render_variants(craft.rgba_png(200, 100), chosen)
    image = decode(thumb)
    assert image.bands == 3
    assert close(colour_at(image, 80, 25), (255, 255, 255))
    assert close(colour_at(image, 20, 25), (30, 200, 30))


# --- animation -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animation_stays_animated_in_webp(fmt: str) -> None:
    original = craft.animated(fmt, 400, 200, frames=3)
    assert probe(original).pages == 3
    variants = by_name(
        render_variants(original, settings(BROKER_VARIANTS="t:100x100,sq:50x50:cover"))
    )
    thumb, square = variants["t"], variants["sq"]
    assert (thumb.width, thumb.height, thumb.frames) == (100, 50, 3)
    assert (square.width, square.height, square.frames) == (50, 50, 3)
    for variant in (thumb, square):
        image = decode(variant)
        assert image.get("n-pages") == 3
        assert list(image.get("delay")) == [100, 100, 100]
        assert image.get("loop") == 0
        for index, expected in enumerate(craft.FRAME_COLOURS):
            top = index * variant.height
            assert close(colour_at(image, 5, top + variant.height // 2)[:3], expected, tolerance=20)
        assert_no_metadata(variant)


@pytest.mark.parametrize("box", [(50, 37), (37, 50), (7, 7), (333, 101), (400, 400)])
def test_animated_cover_is_the_box_in_every_frame(box: tuple[int, int]) -> None:
    original = craft.animated("gif", 333, 101, frames=4)
    spec = f"c:{box[0]}x{box[1]}:cover"
    (cover,) = render_variants(original, settings(BROKER_VARIANTS=spec))
    # A box larger than the frame is cropped to its ratio, not enlarged: 400x400 -> 101x101.
    expected = box if box != (400, 400) else (101, 101)
    assert (cover.width, cover.height, cover.frames) == (*expected, 4)
    image = decode(cover)
    for index in range(4):
        middle = index * cover.height + cover.height // 2
        colour = craft.FRAME_COLOURS[index % 3]
        assert close(colour_at(image, cover.width // 2, middle)[:3], colour, tolerance=20)


@pytest.mark.parametrize(("fmt", "out"), [("gif", "jpeg"), ("webp", "avif"), ("gif", "avif")])
def test_animation_is_its_first_frame_in_jpeg_and_avif(fmt: str, out: str) -> None:
    chosen = settings(
        BROKER_VARIANTS="t:100x100", BROKER_VARIANT_FORMAT=out, BROKER_VARIANT_EFFORT="0"
    )
    (thumb,) = render_variants(craft.animated(fmt, 200, 100), chosen)
    assert (thumb.width, thumb.height, thumb.frames) == (100, 50, 1)
    assert close(colour_at(decode(thumb), 50, 25)[:3], (255, 0, 0), tolerance=20)


def test_animation_over_the_pixel_budget_is_its_first_frame() -> None:
    original = craft.animated("gif", 200, 100, frames=3)
    # One frame fits (20 000 px), all three (60 000) do not.
    (thumb,) = render_variants(original, settings(BROKER_VARIANTS="t:100x100", MAX_PIXELS="50000"))
    assert thumb.frames == 1
    assert close(colour_at(decode(thumb), 50, 25)[:3], (255, 0, 0), tolerance=20)


# --- sizes -----------------------------------------------------------------------------------


def test_never_enlarged() -> None:
    variants = by_name(render_variants(craft.plain(100, 80), settings()))
    assert [(v.width, v.height) for v in variants.values()] == [(100, 80), (100, 80)]


def test_one_pixel_image() -> None:
    variants = render_variants(
        craft.plain(1, 1), settings(BROKER_VARIANTS="t:320x320,c:64x64:cover")
    )
    assert [(v.width, v.height) for v in variants] == [(1, 1), (1, 1)]
    for variant in variants:
        assert close(colour_at(decode(variant), 0, 0), (90, 120, 150))


def test_cover_is_exactly_the_box_and_fit_keeps_the_ratio() -> None:
    chosen = settings(
        BROKER_VARIANTS="wide:300x100:cover,tall:100x300:cover,fit:300x100,sq:64x64:cover"
    )
    variants = by_name(render_variants(craft.plain(1000, 600, "jpeg"), chosen))
    assert (variants["wide"].width, variants["wide"].height) == (300, 100)
    assert (variants["tall"].width, variants["tall"].height) == (100, 300)
    assert (variants["fit"].width, variants["fit"].height) == (167, 100)
    assert (variants["sq"].width, variants["sq"].height) == (64, 64)
    for variant in variants.values():
        decode(variant)


def test_cover_crops_the_centre() -> None:
    # Left half red, right half blue: a centred square crop of a 2:1 image shows both halves.
    original = craft.camera_jpeg(400, 200)
    (square,) = render_variants(original, settings(BROKER_VARIANTS="sq:100x100:cover"))
    image = decode(square)
    assert close(colour_at(image, 10, 50), (220, 20, 20), tolerance=20)
    assert close(colour_at(image, 90, 50), (20, 20, 220), tolerance=20)


def test_cover_of_a_small_source_crops_to_the_box_ratio_without_enlarging() -> None:
    chosen = settings(BROKER_VARIANTS="sq:320x320:cover,banner:400x100:cover")
    variants = by_name(render_variants(craft.plain(100, 80), chosen))
    assert (variants["sq"].width, variants["sq"].height) == (80, 80)
    assert (variants["banner"].width, variants["banner"].height) == (100, 25)


def test_smaller_variants_made_from_the_largest_match_those_made_alone() -> None:
    original = craft.camera_jpeg(3001, 1999, orientation=6)
    together = by_name(
        render_variants(original, settings(BROKER_VARIANTS="a:320x320,b:1280x1280,c:200x200:cover"))
    )
    for name in ("a", "c"):
        alone = render_variants(
            original,
            settings(BROKER_VARIANTS=f"{name}:{'320x320' if name == 'a' else '200x200:cover'}"),
        )
        assert (together[name].width, together[name].height) == (alone[0].width, alone[0].height)
    assert list(together) == ["a", "b", "c"]  # the configured order, whatever the render order


def test_avif_original() -> None:
    original = craft.avif(640, 480, alpha=True)
    assert probe(original).format == "avif"
    variants = by_name(render_variants(original, settings()))
    assert (variants["thumb"].width, variants["thumb"].height) == (320, 240)
    assert (variants["medium"].width, variants["medium"].height) == (640, 480)
    image = decode(variants["thumb"])
    assert image.hasalpha() and colour_at(image, 300, 100)[3] == 0
    assert close(colour_at(image, 20, 100), (240, 140, 20, 255), tolerance=15)


def test_a_file_path_renders_like_bytes(tmp_path: Path) -> None:
    original = craft.camera_jpeg(800, 600, orientation=6)
    path = tmp_path / "original[1].jpg"  # brackets would be libvips load options in a filename
    path.write_bytes(original)
    from_file = render_variants(path, settings())
    from_bytes = render_variants(original, settings())
    assert [(v.width, v.height) for v in from_file] == [(v.width, v.height) for v in from_bytes]


# --- what must fail --------------------------------------------------------------------------


def _failure(source: bytes | Path, **env: str) -> RenderError:
    with pytest.raises(RenderError) as caught:
        render_variants(source, settings(**env))
    return caught.value


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.99])
def test_truncated_jpeg_fails_instead_of_a_partial_picture(fraction: float) -> None:
    original = craft.camera_jpeg(1600, 1200)
    error = _failure(original[: int(len(original) * fraction)])
    assert (error.code, error.permanent) == ("undecodable", True)
    assert "premature end" in error.message.lower()


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.99])
def test_truncated_png_fails(fraction: float) -> None:
    original = craft.large_png(1600, 1200)
    assert _failure(original[: int(len(original) * fraction)]).code == "undecodable"


def test_truncated_file_failure_names_no_path(tmp_path: Path) -> None:
    path = tmp_path / "secret-location.jpg"
    original = craft.camera_jpeg(1600, 1200)
    path.write_bytes(original[: len(original) // 2])
    error = _failure(path)
    assert error.code == "undecodable"
    assert str(tmp_path) not in error.message and "secret-location" not in error.message


def test_png_with_missing_rows_fails() -> None:
    # A header of 100x100 over a complete, valid zlib stream holding only 10 rows.
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 100, 100, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 101 * 10)
    lying = b"\x89PNG\r\n\x1a\n" + craft._chunk(b"IHDR", header) + craft._chunk(b"IDAT", body)
    lying += craft._chunk(b"IEND", b"")
    assert _failure(lying).code == "undecodable"


@pytest.mark.parametrize(
    "bomb",
    [craft.png_bomb(50000, 50000), craft.png_bomb(30000, 30000), craft.gif_bomb(50000, 50000)],
)
def test_decompression_bombs_are_refused_from_the_header(bomb: bytes) -> None:
    assert len(bomb) < 200
    error = _failure(bomb)
    assert (error.code, error.permanent) == ("too_many_pixels", True)
    assert "over the limit of 40000000 pixels" in error.message


def test_the_pixel_limit_is_the_configured_one() -> None:
    assert _failure(craft.plain(101, 100), MAX_PIXELS="10000").code == "too_many_pixels"
    assert len(render_variants(craft.plain(100, 100), settings(MAX_PIXELS="10000"))) == 2


@pytest.mark.parametrize(
    "original",
    [
        b"",
        b"hello, world",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        craft.plain(20, 20, "tiff"),
        craft.plain(20, 20, "bmp"),
        b"P6\n4 4\n255\n" + b"\x00" * 48,
        b"2 2\n1 2\n3 4\n",  # a libvips matrix file
    ],
    ids=["empty", "text", "svg", "tiff", "bmp", "ppm", "matrix"],
)
def test_formats_the_broker_does_not_accept_are_refused(original: bytes) -> None:
    error = _failure(original)
    assert (error.code, error.permanent) == ("unsupported_format", True)


def test_heic_is_refused_with_a_clear_reason() -> None:
    heic = craft.heif_container(("heic", "mif1"), "hvc1", ((640, 480),), config=craft.hevc_config())
    assert probe(heic).format == "heic"  # libheif reads the header ...
    error = _failure(heic)  # ... but the bundled build has no HEVC decoder
    assert (error.code, error.permanent) == ("unsupported_format", True)
    assert "HEVC" in error.message


def test_bundled_libvips_still_cannot_decode_hevc() -> None:
    """If this fails, the wheel gained an HEVC decoder: HEIC uploads can be allowed."""
    heic = craft.heif_container(("heic", "mif1"), "hvc1", ((64, 48),), config=craft.hevc_config())
    with pytest.raises(pyvips.Error, match="has not been built in: HEVC"):
        pyvips.Image.new_from_buffer(heic, "").avg()


def test_bytes_of_another_type_than_recorded_fail() -> None:
    error = _failure_with_type(craft.plain(20, 20, "png"), "image/jpeg")
    assert (error.code, error.message) == (
        "undecodable",
        "the bytes are image/png, the image says image/jpeg",
    )
    assert render_variants(craft.plain(20, 20, "png"), settings(), expected_type="image/png")


def _failure_with_type(source: bytes, expected_type: str) -> RenderError:
    with pytest.raises(RenderError) as caught:
        render_variants(source, settings(), expected_type=expected_type)
    return caught.value
