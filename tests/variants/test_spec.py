"""BROKER_VARIANTS and friends: the documented defaults, and a clear error for every bad value.

The variables are declared with the broker's other settings (broker/settings.py), so a bad
value stops the app at start-up with a ConfigError naming the variable.
"""

from __future__ import annotations

import pytest

from broker.settings import ConfigError, load_settings
from broker.variants.spec import (
    FORMATS,
    VariantConfigError,
    VariantSettings,
    VariantSpec,
    parse_format,
    parse_variants,
)


def load_variant_settings(env: dict[str, str], *, max_pixels: int) -> VariantSettings:
    """The variant settings the broker builds from these variables (test mode otherwise)."""
    source = {"BROKER_ENV": "test", "BROKER_MAX_PIXELS": str(max_pixels), **env}
    return load_settings(source).variant_settings


def test_defaults_are_the_contracts() -> None:
    settings = load_variant_settings({}, max_pixels=40_000_000)
    assert settings.specs == (
        VariantSpec("thumb", 320, 320, cover=False),
        VariantSpec("medium", 1280, 1280, cover=False),
    )
    assert settings.format.name == "webp"
    assert settings.format.content_type == "image/webp"
    assert settings.quality == 80
    assert settings.effort == 4
    assert settings.enabled
    assert settings.limits.max_pixels == 40_000_000
    assert settings.limits.memory_bytes == 1024 << 20
    assert settings.limits.timeout_seconds == 60
    assert settings.limits.threads == 1


def test_cover_and_whitespace() -> None:
    assert parse_variants(" avatar:96x96:cover , hero:1920X600") == (
        VariantSpec("avatar", 96, 96, cover=True),
        VariantSpec("hero", 1920, 600, cover=False),
    )


@pytest.mark.parametrize("text", ["", "  ", "\t"])
def test_empty_turns_variants_off(text: str) -> None:
    settings = load_variant_settings({"BROKER_VARIANTS": text}, max_pixels=1)
    assert settings.specs == ()
    assert not settings.enabled


def test_spec_lookup() -> None:
    settings = load_variant_settings({}, max_pixels=1)
    assert settings.spec("thumb") == VariantSpec("thumb", 320, 320)
    assert settings.spec("original") is None
    assert settings.spec("nope") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thumb:320x320,thumb:64x64", "duplicate variant name 'thumb'"),
        ("thumb:0x320", "between 1 and 8192"),
        ("thumb:320x0", "between 1 and 8192"),
        ("thumb:8193x10", "between 1 and 8192"),
        ("thumb:99999999x1", "the size must be WxH"),
        ("thumb:-1x5", "the size must be WxH"),
        ("thumb:320", "the size must be WxH"),
        ("thumb:320x320x3", "the size must be WxH"),
        ("thumb:\uff13\uff12\uff10x320", "the size must be WxH"),  # fullwidth digits
        ("thumb", "expected name:WxH"),
        ("thumb:1x1:cover:extra", "expected name:WxH"),
        ("thumb:1x1:fill", "the only mode is 'cover'"),
        ("Thumb:1x1", "a name is 1-32 of a-z 0-9 _ -"),
        ("../x:1x1", "a name is 1-32"),
        ("a/b:1x1", "a name is 1-32"),
        ("a.b:1x1", "a name is 1-32"),
        ('a"b:1x1', "a name is 1-32"),
        ("_x:1x1", "a name is 1-32"),
        ("x" * 33 + ":1x1", "a name is 1-32"),
        (":1x1", "a name is 1-32"),
        ("original:320x320", "'original' is reserved"),
        ("thumb:1x1,,medium:2x2", "empty item"),
        ("thumb:1x1,", "empty item"),
        (",".join(f"v{i}:10x10" for i in range(17)), "at most 16 variants"),
    ],
)
def test_bad_variants_are_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(VariantConfigError, match=r"^BROKER_VARIANTS: ") as caught:
        parse_variants(text)
    assert message in str(caught.value)


def test_longest_name_and_largest_box_are_accepted() -> None:
    name = "a" + "-_0" * 10 + "z"
    assert parse_variants(f"{name}:8192x8192") == (VariantSpec(name, 8192, 8192),)


@pytest.mark.parametrize(
    ("text", "name"),
    [("", "webp"), ("webp", "webp"), ("AVIF", "avif"), ("jpeg", "jpeg"), ("jpg", "jpeg")],
)
def test_formats(text: str, name: str) -> None:
    assert parse_format(text) is FORMATS[name]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(VariantConfigError, match="BROKER_VARIANT_FORMAT: 'png' is not one of"):
        parse_format("png")


def test_quality_defaults_follow_the_format() -> None:
    avif = load_variant_settings({"BROKER_VARIANT_FORMAT": "avif"}, max_pixels=1)
    jpeg = load_variant_settings({"BROKER_VARIANT_FORMAT": "jpeg"}, max_pixels=1)
    assert (avif.quality, avif.format.content_type, avif.format.extension) == (
        50,
        "image/avif",
        "avif",
    )
    assert (jpeg.quality, jpeg.format.content_type, jpeg.format.extension) == (
        80,
        "image/jpeg",
        "jpg",
    )
    tuned = load_variant_settings(
        {"BROKER_VARIANT_QUALITY": "65", "BROKER_VARIANT_EFFORT": "6"}, max_pixels=1
    )
    assert (tuned.quality, tuned.effort) == (65, 6)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BROKER_VARIANT_QUALITY": "0"}, "BROKER_VARIANT_QUALITY must be between 1 and 100"),
        ({"BROKER_VARIANT_QUALITY": "101"}, "BROKER_VARIANT_QUALITY must be between 1 and 100"),
        ({"BROKER_VARIANT_QUALITY": "high"}, "BROKER_VARIANT_QUALITY: cannot parse 'high'"),
        ({"BROKER_VARIANT_QUALITY": "8e1"}, "BROKER_VARIANT_QUALITY: cannot parse '8e1'"),
        (
            {"BROKER_VARIANT_EFFORT": "7"},
            "BROKER_VARIANT_EFFORT must be between 0 and 6 for BROKER_VARIANT_FORMAT=webp",
        ),
        (
            {"BROKER_VARIANT_FORMAT": "avif", "BROKER_VARIANT_EFFORT": "10"},
            "BROKER_VARIANT_EFFORT must be between 0 and 9",
        ),
        ({"BROKER_VARIANT_TIMEOUT": "0"}, "BROKER_VARIANT_TIMEOUT must be between 1 and 3600"),
        ({"BROKER_VARIANT_MEMORY_MB": "64"}, "BROKER_VARIANT_MEMORY_MB must be between 256"),
        ({"BROKER_VARIANT_THREADS": "0"}, "BROKER_VARIANT_THREADS must be between 1 and 64"),
        ({"BROKER_VARIANT_LEASE": "0"}, "BROKER_VARIANT_LEASE must be between 1 and 3600"),
        ({"BROKER_VARIANT_MAX_ATTEMPTS": "0"}, "BROKER_VARIANT_MAX_ATTEMPTS must be between 1"),
        ({"BROKER_VARIANT_RETRY_DELAY": "0"}, "BROKER_VARIANT_RETRY_DELAY must be positive"),
    ],
)
def test_bad_numbers_are_refused_with_a_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_variant_settings(env, max_pixels=1)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BROKER_VARIANTS": "thumb:0x320"}, "BROKER_VARIANTS: 'thumb:0x320': width and height"),
        ({"BROKER_VARIANTS": "original:9x9"}, "BROKER_VARIANTS: 'original:9x9': 'original'"),
        ({"BROKER_VARIANT_FORMAT": "heic"}, "BROKER_VARIANT_FORMAT: 'heic' is not one of"),
    ],
)
def test_the_app_refuses_to_start_naming_the_variable(env: dict[str, str], message: str) -> None:
    # The parsers' own messages reach the operator whole, not as "cannot parse".
    with pytest.raises(ConfigError) as caught:
        load_variant_settings(env, max_pixels=1)
    assert message in str(caught.value)


def test_effort_is_ignored_for_jpeg() -> None:
    settings = load_variant_settings(
        {"BROKER_VARIANT_FORMAT": "jpeg", "BROKER_VARIANT_EFFORT": "99"}, max_pixels=1
    )
    assert settings.format.name == "jpeg"
