"""The rules of S3 multipart uploads as plain functions: no Flask, no boto3, no pymongo.

How a declared size is cut into parts (S3's limits: parts of 5 MiB to 5 GiB, the last one
smaller, at most 10,000 of them), the exact length of each part (which its URL signs), the
composite ETag S3 gives the finished object (the MD5 of the parts' MD5s, then ``-<count>``),
and the check of the part list a client hands to complete.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from broker.errors import TooLarge, UploadInvalid, ValidationFailed

MiB = 1024 * 1024
GiB = 1024 * MiB
# S3's limits (AWS, and the S3-compatible stores the broker runs on, RGW among them).
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024 * GiB
# The largest object one PUT may store; above it only a multipart upload can.
MAX_SINGLE_PUT_SIZE = 5 * GiB
# The part size the broker chooses when the client names none: large enough that a few parts
# in flight keep a connection busy, small enough that a dropped one costs seconds to resend.
DEFAULT_PART_SIZE = 8 * MiB
# The size above which the broker's own clients (broker.js, its Uppy options) go multipart:
# below it one PUT is as resumable as it needs to be.
MULTIPART_THRESHOLD = 16 * MiB
# At most this many parts are signed (or listed in one request's answer) per call.
MAX_PARTS_PER_CALL = 100

_HEX_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class MultipartPlan:
    """How one multipart upload is cut, and the bucket's id of it (never shown to clients)."""

    bucket_upload_id: str
    part_size: int
    part_count: int


def default_part_size(size: int) -> int:
    """The broker's part size for ``size`` bytes: 8 MiB, or whole MiB enough for 10,000 parts."""
    fewest = -(-size // MAX_PARTS)
    return max(DEFAULT_PART_SIZE, -(-fewest // MiB) * MiB)


def plan_parts(size: int, part_size: int | None) -> tuple[int, int]:
    """``(part_size, part_count)`` for ``size`` bytes; the client's part size is kept exactly.

    A part size outside S3's bounds is refused by the request schema; here only what depends
    on the size: too many parts (400 naming ``part_size``), or an object S3 cannot hold (413).
    """
    if size > MAX_OBJECT_SIZE:
        raise TooLarge(
            f"size: must be at most {MAX_OBJECT_SIZE} (S3's largest object)",
            details={"size": [f"must be at most {MAX_OBJECT_SIZE}"]},
        )
    chosen = default_part_size(size) if part_size is None else part_size
    count = max(1, -(-size // chosen))
    if count > MAX_PARTS:
        smallest = -(-size // MAX_PARTS)
        message = (
            f"cuts {size} bytes into {count} parts, more than S3's {MAX_PARTS}: "
            f"use at least {smallest} bytes"
        )
        raise ValidationFailed(f"part_size: {message}", details={"part_size": [message]})
    return chosen, count


def part_length(size: int, part_size: int, part_number: int) -> int:
    """The exact length of part ``part_number`` (1-based): ``part_size``, the last one less."""
    start = (part_number - 1) * part_size
    return min(part_size, size - start)


def check_part_numbers(numbers: Sequence[int], part_count: int) -> None:
    """Refuse part numbers outside ``1..part_count`` or named twice in one request (400)."""
    problems: list[str] = []
    outside = sorted({n for n in numbers if not 1 <= n <= part_count})
    if outside:
        problems.append(
            f"part_number must be 1 to {part_count} for this upload "
            f"(not {', '.join(map(str, outside[:10]))})"
        )
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        problems.append(
            f"each part at most once per request ({', '.join(map(str, repeated[:10]))})"
        )
    if problems:
        raise ValidationFailed("parts: " + "; ".join(problems), details={"parts": problems})


def hex_of_md5(content_md5: str) -> str:
    """The hex form (a part's ETag) of a base64 Content-MD5 that was already validated."""
    return base64.b64decode(content_md5).hex()


def normalise_etag(etag: str) -> str:
    """An ETag as the broker compares them: no quotes, lower case."""
    return etag.strip().strip('"').lower()


def composite_etag(digests: Sequence[str]) -> str:
    """The ETag S3 gives a multipart object made of parts with these base64 MD5s, in order."""
    joined = b"".join(base64.b64decode(digest) for digest in digests)
    return f"{hashlib.md5(joined).hexdigest()}-{len(digests)}"


def check_complete_list(
    parts: Sequence[tuple[int, str]], part_count: int, signed: Mapping[int, str]
) -> list[tuple[int, str]]:
    """The part list to complete with, ``(number, hex ETag)``, or UploadInvalid saying why not.

    A client must list every part, 1 to ``part_count`` in ascending order, each with the ETag
    of the bytes its URL signed (the newest digest signed for that number). S3 itself would
    complete a subset, and RGW 16 also takes a list out of order; neither is what was declared.
    """
    numbers = [number for number, _ in parts]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise UploadInvalid("parts: must be listed in ascending order of part_number, each once")
    listed = set(numbers)
    missing = [n for n in range(1, part_count + 1) if n not in listed]
    if missing:
        raise UploadInvalid(
            f"parts: this upload has {part_count} parts; missing: "
            + ", ".join(map(str, missing[:10]))
            + (" …" if len(missing) > 10 else "")
        )
    extra = [n for n in numbers if n > part_count or n < 1]
    if extra:
        raise UploadInvalid(f"parts: this upload has {part_count} parts, not {extra[0]}")
    unsigned = [n for n in numbers if n not in signed]
    if unsigned:
        raise UploadInvalid(f"parts: part {unsigned[0]} was never signed: sign and upload it")
    completed = []
    for number, etag in parts:
        wanted = hex_of_md5(signed[number])
        if normalise_etag(etag) != wanted:
            raise UploadInvalid(
                f"parts: part {number}'s etag is not the one of the bytes its URL signed"
            )
        completed.append((number, wanted))
    return completed


def expected_etag(part_count: int, signed: Mapping[int, str]) -> str:
    """The composite ETag the signed digests of parts ``1..part_count`` imply."""
    return composite_etag([signed[number] for number in range(1, part_count + 1)])


def is_hex_md5(value: str) -> bool:
    """Whether ``value`` is an ETag of one part (a hex MD5, quotes and case aside)."""
    return _HEX_MD5.fullmatch(normalise_etag(value)) is not None


def decodes_as_md5(content_md5: str) -> bool:
    """Whether a string is the base64 of a 16-byte digest."""
    try:
        return len(base64.b64decode(content_md5, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False
