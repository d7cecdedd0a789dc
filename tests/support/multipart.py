"""The multipart flow as a client runs it: create → sign parts → PUT each part to the bucket →
complete, over any Flask test client (the bucket is always reached over HTTP)."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.images import md5_b64, png_bytes
from tests.support.tokens import auth

MiB = 1024 * 1024
HTTP_TIMEOUT = 30
# Big enough for a few 5 MiB parts; the default (10 MiB) leaves room for two.
MULTIPART_MAX_BYTES = str(64 * MiB)


def padded_png(size: int, width: int = 4, height: int = 3) -> bytes:
    """A valid PNG of exactly ``size`` bytes whose bytes differ on every call: a private
    ancillary chunk of random bytes sits between the header and the image data."""
    plain = png_bytes(width, height)
    header, rest = plain[:33], plain[33:]  # the signature and IHDR, then IDAT and IEND
    padding = size - len(plain) - 12  # a chunk's length, type and CRC
    assert padding >= 0, f"a PNG of {size} bytes cannot hold {len(plain)} bytes of image"
    data = os.urandom(padding)
    chunk = (
        struct.pack(">I", padding) + b"prNd" + data + struct.pack(">I", zlib.crc32(b"prNd" + data))
    )
    return header + chunk + rest


def slices(data: bytes, part_size: int) -> dict[int, bytes]:
    """The parts of ``data`` by number (1-based), cut every ``part_size`` bytes."""
    return {
        offset // part_size + 1: data[offset : offset + part_size]
        for offset in range(0, len(data), part_size)
    }


def etag_of(part: bytes) -> str:
    """A part's ETag: the hex MD5 of its bytes."""
    return hashlib.md5(part).hexdigest()


def composite_etag(parts: list[bytes]) -> str:
    """The ETag S3 gives an object made of ``parts``."""
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + (
        f"-{len(parts)}"
    )


def put_part(signed: Mapping[str, Any], data: bytes, **extra_headers: str) -> requests.Response:
    """PUT one part straight to the bucket with the headers its grant lists (and any extra)."""
    headers = {**signed["headers"], **extra_headers}
    return requests.put(signed["url"], data=data, headers=headers, timeout=HTTP_TIMEOUT)


@dataclass
class Multipart:
    """One multipart upload of ``data`` by ``sub`` through ``client``'s app."""

    client: FlaskClient
    data: bytes
    sub: str = "alice"
    upload: dict[str, Any] | None = None

    @property
    def upload_id(self) -> str:
        """The broker's id of the upload (after :meth:`create`)."""
        assert self.upload is not None
        upload_id: str = self.upload["upload_id"]
        return upload_id

    @property
    def parts(self) -> dict[int, bytes]:
        """The parts of the data as the upload cuts them."""
        assert self.upload is not None
        return slices(self.data, self.upload["part_size"])

    def create(self, **fields: Any) -> TestResponse:
        """``POST /images/multipart`` declaring the data (a PNG by default)."""
        body = {"filename": "panorama.png", "filetype": "image/png", "size": len(self.data)}
        answer = self.client.post(
            "/images/multipart", json={**body, **fields}, headers=auth(self.sub)
        )
        if answer.status_code == 201:
            self.upload = answer.json
        return answer

    def created(self, **fields: Any) -> Multipart:
        """:meth:`create`, asserting it answered 201."""
        answer = self.create(**fields)
        assert answer.status_code == 201, answer.json
        return self

    def sign(self, *numbers: int, md5: Mapping[int, str] | None = None) -> TestResponse:
        """``POST …/parts`` for these part numbers (every part when none), their real MD5s
        unless ``md5`` says otherwise."""
        numbers = numbers or tuple(self.parts)
        digests = {n: md5_b64(self.parts[n]) for n in numbers} | dict(md5 or {})
        body = {"parts": [{"part_number": n, "content_md5": digests[n]} for n in numbers]}
        return self.client.post(
            f"/images/multipart/{self.upload_id}/parts", json=body, headers=auth(self.sub)
        )

    def signed(self, *numbers: int) -> dict[int, dict[str, Any]]:
        """:meth:`sign`, asserting 200; the grants by part number."""
        answer = self.sign(*numbers)
        assert answer.status_code == 200, answer.json
        return {part["part_number"]: part for part in answer.json["parts"]}

    def send(self, *numbers: int) -> dict[int, str]:
        """Sign and PUT these parts (every part when none); their ETags as the bucket gave them."""
        etags = {}
        for number, grant in self.signed(*numbers).items():
            stored = put_part(grant, self.parts[number])
            assert stored.status_code == 200, stored.text
            etags[number] = stored.headers["ETag"]
        return etags

    def listed(self) -> TestResponse:
        """``GET …/parts``."""
        return self.client.get(f"/images/multipart/{self.upload_id}/parts", headers=auth(self.sub))

    def complete(self, parts: list[tuple[int, str]] | None = None) -> TestResponse:
        """``POST …/complete`` with ``parts`` (every part with its real ETag when None)."""
        if parts is None:
            parts = [(n, etag_of(part)) for n, part in self.parts.items()]
        body = {"parts": [{"part_number": n, "etag": etag} for n, etag in parts]}
        return self.client.post(
            f"/images/multipart/{self.upload_id}/complete", json=body, headers=auth(self.sub)
        )

    def abort(self) -> TestResponse:
        """``DELETE /images/multipart/<upload_id>``."""
        return self.client.delete(f"/images/multipart/{self.upload_id}", headers=auth(self.sub))

    def uploaded(self, **fields: Any) -> dict[str, Any]:
        """The whole flow: create, send every part, complete; the image (asserting 201)."""
        self.created(**fields).send()
        answer = self.complete()
        assert answer.status_code == 201, answer.json
        image: dict[str, Any] = answer.json["image"]
        return image
