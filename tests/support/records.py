"""Records written straight into MongoDB, for tests and benchmarks that need data, not uploads."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from broker.domain import Image


def image_record(owner: str = "alice", **fields: Any) -> Image:
    """A confirmed image of ``owner`` (a 1x1 PNG of 10 bytes unless ``fields`` say otherwise),
    with a fresh id and key."""
    values: dict[str, Any] = {
        "id": str(ObjectId()),
        "key": f"{owner}/{ObjectId()}.png",
        "owner": owner,
        "filename": "a.png",
        "content_type": "image/png",
        "size": 10,
        "width": 1,
        "height": 1,
        "content_md5": None,
        "etag": None,
        "kind": "gallery",
        "is_primary": False,
        "caption": None,
        **fields,
    }
    return Image(**values)
