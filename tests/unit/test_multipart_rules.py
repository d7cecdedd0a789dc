"""The multipart rules: how a size is cut into parts, each part's length, the composite ETag,
and the part list complete accepts."""

from __future__ import annotations

import base64
import hashlib
from types import MappingProxyType

import pytest

from broker import multipart
from broker.errors import TooLarge, UploadInvalid, ValidationFailed

MiB = multipart.MiB


def md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class TestPlan:
    @pytest.mark.parametrize(
        ("size", "part_size", "count"),
        [
            (1, 8 * MiB, 1),
            (8 * MiB, 8 * MiB, 1),
            (8 * MiB + 1, 8 * MiB, 2),
            (80_000 * MiB, 8 * MiB, 10_000),
            # Past 80,000 MiB the parts grow, in whole MiB, so 10,000 of them are enough.
            (80_000 * MiB + 1, 9 * MiB, 8_889),
            (5 * 2**40, 525 * MiB, 9_987),
        ],
    )
    def test_the_default_part_size_keeps_within_10000_parts(
        self, size: int, part_size: int, count: int
    ) -> None:
        assert multipart.plan_parts(size, None) == (part_size, count)
        assert multipart.MIN_PART_SIZE <= part_size <= multipart.MAX_PART_SIZE

    def test_a_client_part_size_is_kept_exactly(self) -> None:
        assert multipart.plan_parts(11 * MiB, 5 * MiB + 3) == (5 * MiB + 3, 3)

    def test_too_many_parts_name_the_smallest_part_size(self) -> None:
        with pytest.raises(ValidationFailed) as refused:
            multipart.plan_parts(50_000 * MiB + 1, 5 * MiB)
        assert refused.value.details is not None
        assert "use at least 5242881 bytes" in refused.value.details["part_size"][0]

    def test_an_object_over_5_tib_is_too_large(self) -> None:
        with pytest.raises(TooLarge):
            multipart.plan_parts(5 * 2**40 + 1, None)

    def test_each_part_length_and_the_last_one(self) -> None:
        size, part = 11 * MiB + 7, 5 * MiB
        assert [multipart.part_length(size, part, n) for n in (1, 2, 3)] == [part, part, MiB + 7]
        assert multipart.part_length(5 * MiB, 5 * MiB, 1) == 5 * MiB

    def test_part_numbers_outside_the_plan_or_repeated_are_refused(self) -> None:
        multipart.check_part_numbers([1, 3, 2], 3)
        for numbers in ([0], [4], [1, 1]):
            with pytest.raises(ValidationFailed):
                multipart.check_part_numbers(numbers, 3)


PARTS = (b"one", b"two", b"three")
SIGNED = MappingProxyType({n: md5(part) for n, part in enumerate(PARTS, 1)})


class TestComplete:
    def etags(self) -> list[tuple[int, str]]:
        return [(n, hashlib.md5(part).hexdigest()) for n, part in enumerate(PARTS, 1)]

    def test_the_composite_etag_is_the_md5_of_the_part_md5s(self) -> None:
        digests = b"".join(hashlib.md5(part).digest() for part in PARTS)
        expected = hashlib.md5(digests).hexdigest() + "-3"
        assert multipart.expected_etag(3, SIGNED) == expected
        assert multipart.composite_etag([SIGNED[1]]).endswith("-1")

    def test_the_whole_list_in_order_is_taken_quoted_or_not(self) -> None:
        quoted = [(n, f'"{etag.upper()}"') for n, etag in self.etags()]
        assert multipart.check_complete_list(quoted, 3, SIGNED) == self.etags()

    @pytest.mark.parametrize(
        ("listed", "message"),
        [
            ([0, 1], "missing: 3"),
            ([1, 0, 2], "ascending"),
            ([0, 0, 1, 2], "ascending"),
            ([], "missing: 1, 2, 3"),
        ],
    )
    def test_a_list_that_is_not_every_part_once_in_order_is_refused(
        self, listed: list[int], message: str
    ) -> None:
        etags = self.etags()
        with pytest.raises(UploadInvalid, match=message):
            multipart.check_complete_list([etags[i] for i in listed], 3, SIGNED)

    def test_a_part_not_signed_or_with_another_etag_is_refused(self) -> None:
        etags = self.etags()
        with pytest.raises(UploadInvalid, match="part 2's etag"):
            multipart.check_complete_list([etags[0], (2, etags[0][1]), etags[2]], 3, SIGNED)
        with pytest.raises(UploadInvalid, match="never signed"):
            multipart.check_complete_list(etags, 3, {1: SIGNED[1], 3: SIGNED[3]})
        with pytest.raises(UploadInvalid, match="not 4"):
            multipart.check_complete_list([*etags, (4, etags[0][1])], 3, SIGNED)
