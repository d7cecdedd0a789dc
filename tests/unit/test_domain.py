"""The domain rules: keys, the allowlist, limits, names, dispositions, object checks."""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta

import pytest

from broker import domain, imageinfo
from broker.domain import ObjectHead, PendingUpload, UploadPolicy
from broker.errors import TooLarge, UnsupportedType, UploadInvalid, ValidationFailed
from tests.support.images import jpeg_bytes, md5_b64, png_bytes

POLICY = UploadPolicy(
    allowed_types=("image/jpeg", "image/png"),
    max_upload_bytes=1000,
    kinds=("profile", "gallery"),
    max_pixels=10_000,
    min_width=2,
    min_height=2,
    max_width=500,
    max_height=500,
)


def pending(**overrides: object) -> PendingUpload:
    now = datetime.now(UTC)
    values: dict[str, object] = dict(
        id="u1",
        key="alice/abc.png",
        owner="alice",
        filename="a.png",
        content_type="image/png",
        size=100,
        kind="gallery",
        caption=None,
        content_md5=None,
        checksum_sha256=None,
        state=domain.PENDING,
        created_at=now,
        expires_at=now,
        confirm_by=now,
    )
    values.update(overrides)
    return PendingUpload(**values)  # type: ignore[arg-type]


class TestKeys:
    def test_key_is_user_prefix_uuid_and_allowlisted_extension(self) -> None:
        key = domain.new_object_key("alice", "image/jpeg")
        assert re.fullmatch(r"alice/[0-9a-f]{32}\.jpg", key)

    @pytest.mark.parametrize(
        "sub", ["../../etc", "a/b", "a b", "", "x" * 65, "ünïcode", "a.b", "..", "\x00", "u.0123"]
    )
    def test_unsafe_subjects_are_hashed_into_one_segment(self, sub: str) -> None:
        segment = domain.user_segment(sub)
        assert re.fullmatch(r"u\.[0-9a-f]{32}", segment)
        assert "/" not in segment and ".." not in segment

    def test_hashed_segment_cannot_be_claimed_by_a_plain_subject(self) -> None:
        hashed = domain.user_segment("a/b")
        # The plain form never contains a dot, so no sub maps to the hashed value as itself.
        assert domain.user_segment(hashed) != hashed

    def test_distinct_subjects_get_distinct_segments(self) -> None:
        assert domain.user_segment("a/b") != domain.user_segment("a_b")
        assert domain.user_segment("Alice") != domain.user_segment("alice")

    @pytest.mark.parametrize(
        ("content_type", "ext"),
        [
            ("image/jpeg", ".jpg"),
            ("image/png", ".png"),
            ("image/gif", ".gif"),
            ("image/webp", ".webp"),
        ],
    )
    def test_extension_comes_from_the_type(self, content_type: str, ext: str) -> None:
        assert domain.new_object_key("bob", content_type).endswith(ext)


class TestDeclaredUpload:
    def test_allowed_upload_passes(self) -> None:
        domain.check_declared_upload(POLICY, "image/png", 1000, "gallery")

    def test_type_outside_allowlist_is_415(self) -> None:
        with pytest.raises(UnsupportedType):
            domain.check_declared_upload(POLICY, "image/gif", 10, "gallery")

    def test_size_over_limit_is_413(self) -> None:
        with pytest.raises(TooLarge) as raised:
            domain.check_declared_upload(POLICY, "image/png", 1001, "gallery")
        assert raised.value.details == {"size": ["must be at most 1000"]}

    def test_unknown_kind_is_a_validation_error(self) -> None:
        with pytest.raises(ValidationFailed) as raised:
            domain.check_declared_upload(POLICY, "image/png", 10, "cover")
        assert raised.value.details is not None and "kind" in raised.value.details

    def test_type_is_normalised(self) -> None:
        assert domain.normalise_type(" Image/PNG; charset=x ") == "image/png"

    @pytest.mark.parametrize("value", ["", "abc", "AAAA", "not base64!", md5_b64(b"x") + "AA"])
    def test_malformed_md5_is_refused(self, value: str) -> None:
        with pytest.raises(ValidationFailed):
            domain.decode_md5(value)

    def test_md5_is_accepted(self) -> None:
        assert len(domain.decode_md5(md5_b64(b"hello"))) == 16


class TestNames:
    @pytest.mark.parametrize(
        ("given", "shown"),
        [
            ("IMG_1234.jpg", "IMG_1234.jpg"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\x\\pic.png", "pic.png"),
            ("a\x00b\r\nc.png", "abc.png"),
            ("evil\u202egnp.exe", "evilgnp.exe"),
            ("...", "image"),
            ("", "image"),
            ("x.php.png", "x.php.png"),
        ],
    )
    def test_display_name_is_sanitised(self, given: str, shown: str) -> None:
        assert domain.display_name(given) == shown

    def test_long_name_keeps_its_extension(self) -> None:
        name = domain.display_name("a" * 10_000 + ".png")
        assert len(name) == 255 and name.endswith(".png")

    def test_disposition_quotes_are_safe(self) -> None:
        value = domain.content_disposition("inline", 'a";\r\nX-Evil: 1.png')
        assert "\r" not in value and "\n" not in value
        assert value.count('"') == 2

    def test_disposition_non_ascii_uses_rfc6266_extended_value(self) -> None:
        value = domain.content_disposition("attachment", "café 日本.png")
        assert value == (
            'attachment; filename="cafe .png"; '
            "filename*=UTF-8''caf%C3%A9%20%E6%97%A5%E6%9C%AC.png"
        )

    def test_plain_disposition_has_no_extended_value(self) -> None:
        assert domain.content_disposition("inline", "a.png") == 'inline; filename="a.png"'


class TestExpiry:
    def test_default_and_clamp(self) -> None:
        assert domain.clamp_expires(None, 300, 3600) == 300
        assert domain.clamp_expires(60, 300, 3600) == 60
        assert domain.clamp_expires(10**9, 300, 3600) == 3600


class TestObjectChecks:
    def test_missing_object(self) -> None:
        with pytest.raises(UploadInvalid, match="not found"):
            domain.check_object_head(pending(), None)

    def test_size_mismatch(self) -> None:
        with pytest.raises(UploadInvalid, match="size"):
            domain.check_object_head(pending(), ObjectHead(99, "image/png", None))

    def test_type_mismatch(self) -> None:
        with pytest.raises(UploadInvalid, match="filetype"):
            domain.check_object_head(pending(), ObjectHead(100, "image/jpeg", None))

    def test_md5_mismatch(self) -> None:
        etag = '"' + "0" * 32 + '"'
        with pytest.raises(UploadInvalid, match="content_md5"):
            domain.check_object_head(
                pending(content_md5=md5_b64(b"x")), ObjectHead(100, "image/png", etag)
            )

    def test_matching_head_passes(self) -> None:
        data = b"x" * 100
        etag = '"' + __import__("hashlib").md5(data).hexdigest() + '"'
        domain.check_object_head(
            pending(content_md5=md5_b64(data)), ObjectHead(100, "image/png", etag)
        )

    def test_multipart_etag_is_not_an_md5(self) -> None:
        assert domain.md5_from_etag('"' + "a" * 32 + '-3"') is None

    def test_png_content_gives_dimensions(self) -> None:
        assert domain.check_image_content(POLICY, "image/png", png_bytes(20, 10)) == (20, 10)

    def test_jpeg_content_gives_dimensions(self) -> None:
        assert domain.check_image_content(POLICY, "image/jpeg", jpeg_bytes(30, 40)) == (30, 40)

    def test_png_declared_as_jpeg(self) -> None:
        with pytest.raises(UploadInvalid, match="image/png image, image/jpeg was declared"):
            domain.check_image_content(POLICY, "image/jpeg", png_bytes())

    def test_html_declared_as_png(self) -> None:
        with pytest.raises(UploadInvalid, match="not a image/png"):
            domain.check_image_content(POLICY, "image/png", b"<html><script>alert(1)</script>")

    def test_truncated_header(self) -> None:
        with pytest.raises(UploadInvalid, match="truncated"):
            domain.check_image_content(POLICY, "image/png", png_bytes()[:12])

    def test_too_small(self) -> None:
        with pytest.raises(UploadInvalid, match="smaller than the minimum"):
            domain.check_image_content(POLICY, "image/png", png_bytes(1, 1))

    def test_decompression_bomb(self) -> None:
        with pytest.raises(UploadInvalid, match="pixels"):
            domain.check_image_content(POLICY, "image/png", png_bytes(200, 200))

    def test_too_wide(self) -> None:
        wide = UploadPolicy(**{**POLICY.__dict__, "max_pixels": 10**9})
        with pytest.raises(UploadInvalid, match="larger than the maximum"):
            domain.check_image_content(wide, "image/png", png_bytes(600, 2))


def test_tags_are_trimmed_and_deduplicated() -> None:
    assert domain.normalise_tags([" sea ", "Sea", "sky  blue", "sky blue"]) == ["sea", "sky blue"]


class TestSigningWindow:
    def at(self, text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    def test_requests_in_one_window_share_start_and_lifetime(self) -> None:
        first = domain.signing_window(self.at("2026-01-01T10:00:05"), 600, 300, 3600)
        later = domain.signing_window(self.at("2026-01-01T10:09:59.900"), 600, 300, 3600)
        assert first == later == (self.at("2026-01-01T10:00:00"), 900)

    def test_every_request_keeps_at_least_its_lifetime(self) -> None:
        for second in range(0, 1200, 7):
            now = self.at("2026-01-01T10:00:00") + timedelta(seconds=second)
            start, valid_for = domain.signing_window(now, 600, 300, 3600)
            remaining = (start + timedelta(seconds=valid_for) - now).total_seconds()
            assert 300 <= remaining <= 900

    def test_window_shrinks_so_no_url_outlives_the_cap(self) -> None:
        now = self.at("2026-01-01T10:59:59")
        start, valid_for = domain.signing_window(now, 3600, 300, 3600)
        assert valid_for == 3600 and (start + timedelta(seconds=valid_for)) - now <= timedelta(
            hours=1
        )
        assert domain.signing_window(now, 3600, 3600, 3600) == (now, 3600)

    def test_window_zero_signs_now(self) -> None:
        now = self.at("2026-01-01T10:00:05.123")
        assert domain.signing_window(now, 0, 300, 3600) == (self.at("2026-01-01T10:00:05"), 300)


class TestStoredHeaders:
    def test_headers_the_broker_did_not_sign_are_refused_by_name(self) -> None:
        head = ObjectHead(
            100,
            "image/png",
            None,
            stored_headers={"Content-Encoding": "gzip", "Cache-Control": "public"},
            metadata={"note": "x", "b" * 200: "y"},
        )
        with pytest.raises(UploadInvalid) as refused:
            domain.check_object_head(pending(), head)
        message = refused.value.message
        for name in ("Cache-Control", "Content-Encoding", "x-amz-meta-note"):
            assert name in message
        assert "b" * 65 not in message  # a hostile metadata name is cut short

    def test_an_object_carrying_only_what_was_signed_passes(self) -> None:
        domain.check_object_head(pending(), ObjectHead(100, "image/png", None, {}, {}))
        # every PUT URL signs the Cache-Control it stores; any other value was not signed
        signed = {"Cache-Control": domain.STORED_CACHE_CONTROL}
        domain.check_object_head(pending(), ObjectHead(100, "image/png", None, signed, {}))
        with pytest.raises(UploadInvalid, match="Cache-Control"):
            domain.check_object_head(
                pending(), ObjectHead(100, "image/png", None, {"Cache-Control": "no-cache"}, {})
            )

    def test_signed_gets_pin_a_private_cache_control_of_their_lifetime(self) -> None:
        assert domain.download_cache_control(900) == "private, max-age=900, immutable"


def gif(screen: tuple[int, int], *blocks: bytes, color_table: bool = False) -> bytes:
    """A GIF: header, logical screen (with a 2-color table when asked), blocks, trailer."""
    packed = 0x80 if color_table else 0
    table = b"\x00" * 6 if color_table else b""
    return b"GIF89a" + struct.pack("<HHBBB", *screen, packed, 0, 0) + table + b"".join(blocks)


def frame(
    width: int, height: int, left: int = 0, top: int = 0, *, local_table: bool = False
) -> bytes:
    """An image descriptor with a little LZW data in two sub-blocks."""
    packed = 0x81 if local_table else 0  # local table of 2**(1+1) = 4 colors
    table = b"\x00" * 12 if local_table else b""
    descriptor = b"\x2c" + struct.pack("<HHHHB", left, top, width, height, packed)
    return descriptor + table + b"\x02" + b"\x03abc" + b"\x02de" + b"\x00"


GRAPHIC_CONTROL = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"
COMMENT = b"\x21\xfe\x05hello\x03abc\x00"
TRAILER = b"\x3b"


class TestGifDimensions:
    def test_the_screen_when_every_frame_fits(self) -> None:
        data = gif((64, 48), GRAPHIC_CONTROL, frame(64, 48), frame(10, 10, 50, 30), TRAILER)
        assert imageinfo.gif_dimensions(data) == (64, 48)

    def test_a_frame_bigger_than_the_screen_counts(self) -> None:
        data = gif((10, 10), COMMENT, frame(8000, 8000), TRAILER)
        assert imageinfo.gif_dimensions(data) == (8000, 8000)

    def test_a_frame_counts_by_its_extent_offset_included(self) -> None:
        data = gif((10, 10), frame(5, 5), frame(1, 1, 30_000, 29_999), TRAILER)
        assert imageinfo.gif_dimensions(data) == (30_001, 30_000)

    def test_a_big_frame_after_small_ones_and_color_tables_counts(self) -> None:
        blocks = [GRAPHIC_CONTROL + frame(10, 10, local_table=True) for _ in range(50)]
        data = gif((10, 10), *blocks, COMMENT, frame(9000, 10), TRAILER, color_table=True)
        assert imageinfo.gif_dimensions(data) == (9000, 10)

    def test_nothing_after_the_trailer_is_read(self) -> None:
        data = gif((10, 10), frame(10, 10), TRAILER, frame(9000, 9000))
        assert imageinfo.gif_dimensions(data) == (10, 10)

    def test_limits_apply_to_the_largest_frame(self) -> None:
        policy = UploadPolicy(**{**POLICY.__dict__, "allowed_types": ("image/gif",)})
        data = gif((10, 10), frame(200, 200), TRAILER)
        with pytest.raises(UploadInvalid, match="200x200"):
            domain.check_image_content(policy, "image/gif", data)
        assert domain.check_image_content(policy, "image/gif", gif((20, 20), TRAILER)) == (20, 20)

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"GIF89a", id="no screen"),
            pytest.param(b"GIF89a\x0a\x00\x0a", id="cut in the screen"),
            pytest.param(b"GIF88a" + b"\x00" * 20, id="unknown version"),
        ],
    )
    def test_no_screen_no_dimensions(self, data: bytes) -> None:
        assert imageinfo.gif_dimensions(data) is None

    @pytest.mark.parametrize(
        "cut",
        [
            pytest.param(13, id="right after the screen"),
            pytest.param(13 + 3, id="inside an extension"),
            pytest.param(13 + 8 + 5, id="inside a descriptor"),
            pytest.param(13 + 8 + 12, id="inside the LZW data"),
        ],
    )
    def test_data_cut_off_by_the_read_ends_the_walk(self, cut: int) -> None:
        data = gif((10, 10), GRAPHIC_CONTROL, frame(20, 20), frame(30, 30), TRAILER)
        width, height = imageinfo.gif_dimensions(data[:cut]) or (0, 0)
        assert (width, height) in ((10, 10), (20, 20))

    def test_a_zero_length_screen_with_no_frame_is_unreadable(self) -> None:
        with pytest.raises(UploadInvalid, match="truncated or unreadable"):
            domain.check_image_content(
                UploadPolicy(**{**POLICY.__dict__, "allowed_types": ("image/gif",)}),
                "image/gif",
                gif((0, 0), TRAILER),
            )

    def test_huge_counts_are_walked_in_bounded_time(self) -> None:
        # 55 KB of one-byte sub-blocks and empty extensions: every step eats at least a byte.
        many_sub_blocks = b"\x21\xfe" + b"\x01x" * 20_000 + b"\x00"
        many_extensions = b"\x21\xfe\x00" * 5_000
        data = gif((10, 10), many_sub_blocks, many_extensions, frame(50, 40), TRAILER)
        assert len(data) < domain.VERIFY_READ_BYTES
        assert imageinfo.gif_dimensions(data[: domain.VERIFY_READ_BYTES]) == (50, 40)
        # A color table announced bigger than the data simply ends it.
        assert imageinfo.gif_dimensions(gif((10, 10), color_table=True)[:14]) == (10, 10)

    @pytest.mark.parametrize("junk", [b"\x00", b"\x2b", b"\xff"], ids=["nul", "plus", "ff"])
    def test_a_byte_that_starts_no_block_is_refused(self, junk: bytes) -> None:
        # Decoders disagree past it (Chromium stops, Pillow skips and reads on): hiding a frame
        # behind it must not pass.
        data = gif((10, 10), frame(10, 10), junk, frame(9000, 9000), TRAILER)
        with pytest.raises(UploadInvalid, match="malformed"):
            imageinfo.gif_dimensions(data)
