"""Confirm's one ranged GET tells what a HEAD tells, on RGW: size, type, ETag, stored headers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.support.apps import broker_of

pytestmark = pytest.mark.s3

READ = 64 * 1024


@pytest.mark.parametrize("size", [1, 10, READ - 1, READ, READ + 1, 300 * 1024])
def test_size_and_first_bytes_from_one_read(
    rgw_app: Flask, s3: Any, rgw_bucket: str, size: int
) -> None:
    bucket = broker_of(rgw_app).bucket
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    s3.put_object(Bucket=rgw_bucket, Key="a.png", Body=body, ContentType="image/png")
    read = bucket.read_head("a.png", READ)
    assert read is not None
    head, first = read
    assert head == bucket.head("a.png")  # everything a HEAD says, the size included
    assert head.size == size and first == body[:READ]


def test_stored_headers_and_metadata_as_a_head_reports_them(
    rgw_app: Flask, s3: Any, rgw_bucket: str
) -> None:
    # What a hostile client can make the bucket store: confirm must see all of it in the GET.
    s3.put_object(
        Bucket=rgw_bucket,
        Key="b.png",
        Body=b"\x89PNG" * 10,
        ContentType="image/png",
        ContentEncoding="gzip",
        CacheControl="public, max-age=31536000",
        ContentDisposition='attachment; filename="x.html"',
        ContentLanguage="de",
        Expires="Wed, 21 Oct 2037 07:28:00 GMT",
        WebsiteRedirectLocation="/alice/other.png",
        Metadata={"note": "client-chosen"},
    )
    bucket = broker_of(rgw_app).bucket
    read = bucket.read_head("b.png", READ)
    assert read is not None
    head = bucket.head("b.png")
    assert head is not None and read[0] == head
    assert set(head.stored_headers) >= {"Content-Encoding", "Cache-Control", "Content-Language"}
    assert head.metadata == {"note": "client-chosen"}


def test_an_empty_object_and_a_missing_one(rgw_app: Flask, s3: Any, rgw_bucket: str) -> None:
    s3.put_object(Bucket=rgw_bucket, Key="empty.png", Body=b"", ContentType="image/png")
    bucket = broker_of(rgw_app).bucket
    read = bucket.read_head("empty.png", READ)
    assert read is not None and read[0].size == 0 and read[1] == b""
    assert bucket.read_head("missing.png", READ) is None
