"""API fixtures: an uploader doing the real flow (presign → HTTP PUT to the S3 server → confirm)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.helpers import auth, md5_b64, png_bytes


@dataclass
class Uploaded:
    """The result of a whole upload."""

    presign: dict[str, Any]
    image: dict[str, Any]
    data: bytes


Uploader = Callable[..., Uploaded]


def put_to_bucket(presign: dict[str, Any], data: bytes, **extra_headers: str) -> requests.Response:
    """PUT the bytes straight to the presigned URL, as a browser would."""
    return requests.put(
        presign["url"], data=data, headers={**presign["headers"], **extra_headers}, timeout=10
    )


def upload_with(
    client: FlaskClient,
    sub: str = "alice",
    data: bytes | None = None,
    *,
    filename: str = "photo.png",
    filetype: str = "image/png",
    kind: str | None = None,
    caption: str | None = None,
) -> Uploaded:
    """Upload one image for ``sub`` through the whole flow on ``client``'s app."""
    data = data if data is not None else png_bytes()
    body: dict[str, Any] = {
        "filename": filename,
        "filetype": filetype,
        "size": len(data),
        "content_md5": md5_b64(data),
    }
    if kind is not None:
        body["kind"] = kind
    if caption is not None:
        body["caption"] = caption
    presigned = client.post("/images/presign-upload", json=body, headers=auth(sub))
    assert presigned.status_code == 201, presigned.json
    assert put_to_bucket(presigned.json, data).status_code == 200
    confirmed = client.post("/images", json={"key": presigned.json["key"]}, headers=auth(sub))
    assert confirmed.status_code == 201, confirmed.json
    return Uploaded(presigned.json, confirmed.json["image"], data)


@pytest.fixture
def upload(client: FlaskClient) -> Uploader:
    """Upload one image for ``sub`` through the whole flow and return what the API answered."""

    def run(sub: str = "alice", data: bytes | None = None, **options: Any) -> Uploaded:
        return upload_with(client, sub, data, **options)

    return run
