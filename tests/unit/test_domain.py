"""The domain rules: keys, the allowlist, limits, names, dispositions, object checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from broker import domain
from broker.domain import ObjectHead, PendingUpload, UploadPolicy
from broker.errors import TooLarge, UnsupportedType, UploadInvalid, ValidationFailed
from tests.helpers import jpeg_bytes, md5_b64, png_bytes

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

    def test_keys_are_unique(self) -> None:
        keys = {domain.new_object_key("alice", "image/png") for _ in range(1000)}
        assert len(keys) == 1000

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

    def test_signed_gets_pin_a_private_cache_control_of_their_lifetime(self) -> None:
        assert domain.download_cache_control(900) == "private, max-age=900, immutable"

