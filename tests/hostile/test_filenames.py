"""Hostile filenames never reach the key, are stored sanitised, and leave the signed GET safe.

Every name goes through the real flow (presign, PUT to the bucket, confirm), then the image is
read back, and its signed GET URL is both inspected (the ``response-content-disposition`` the
signature pins) and fetched from the bucket (the header the browser would really get).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import KEY_PATTERN, Flow

HOSTILE_NAMES = {
    "unix traversal": "../../etc/passwd.png",
    "windows traversal": "..\\..\\win.png",
    "absolute path": "/etc/shadow.png",
    "unc path": "\\\\server\\share\\x.png",
    "encoded traversal": "..%2F..%2Fetc%2Fpasswd.png",
    "nul": "a\x00b.png",
    "control chars": "a\x01\x07\x1b[31mred\x7f.png",
    "crlf header injection": "a\r\nX-Evil: 1\r\n.png",
    "rtl override": "\u202egnp.exe",
    "rtl embedding": "photo\u202b\u202c.png",
    "zero width": "a\u200b\u200c\u200d\ufeffb.png",
    "line and paragraph separators": "a\u2028b\u2029c.png",
    "only an extension": ".png",
    "only dots": "...",
    "a dot": ".",
    "two dots": "..",
    "only a slash": "/",
    "only spaces": "   ",
    "double extension php last": "x.png.php",
    "double extension png last": "x.php.png",
    "windows device name": "CON.png",
    "windows device name lower": "nul.png",
    "emoji": "\U0001f600\U0001f4f7.png",
    "nfd": "e\u0301te\u0301.png",
    "nfc": "\u00e9t\u00e9.png",
    "quotes and semicolons": "a\"b';c=d\\e.png",
    "percent escapes": "a%22b%0d%0a.png",
    "html": "<img src=x onerror=alert(1)>.png",
    "max length": "x" * 1020 + ".png",
    "long non-ascii": "\u00e9" * 1000 + ".png",
    "tab and spaces": "\tphoto .png ",
}

SAFE_DISPOSITION = re.compile(
    r"^(inline|attachment); filename=\"[A-Za-z0-9 ._()+,=@-]+\""
    r"(; filename\*=UTF-8''[A-Za-z0-9%._~!$&'()*+,;=:@-]+)?$"
)
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def assert_sanitised(filename: str) -> None:
    """What the broker stores and shows as a name is plain, bounded and path-free."""
    assert filename, "the stored filename is empty"
    assert len(filename) <= 255, len(filename)
    assert "/" not in filename and "\\" not in filename, filename
    assert filename not in (".", ".."), filename
    assert filename == filename.strip(), repr(filename)
    bad = [ch for ch in filename if unicodedata.category(ch) in FORBIDDEN_CATEGORIES]
    assert not bad, (filename, bad)
    assert unicodedata.is_normalized("NFC", filename), repr(filename)


def disposition_of(url: str) -> str:
    values = parse_qs(urlsplit(url).query)["response-content-disposition"]
    assert len(values) == 1
    return values[0]


def assert_safe_disposition(value: str, stored: str, disposition: str) -> None:
    assert "\r" not in value and "\n" not in value, repr(value)
    assert SAFE_DISPOSITION.match(value), repr(value)
    assert value.startswith(disposition + ";")
    encoded = re.search(r"filename\*=UTF-8''(\S+)$", value)
    if encoded:
        assert unquote(encoded.group(1), errors="strict") == stored
    else:
        assert f'filename="{stored}"' in value


@pytest.fixture(scope="module")
def flow(module_flows: Callable[..., Flow]) -> Flow:
    """One app for the whole module: each name is its own upload."""
    return module_flows()


@pytest.fixture(scope="module")
def uploaded(flow: Flow) -> dict[str, dict[str, Any]]:
    """Every hostile name uploaded once, by name id."""
    return {name_id: flow.upload(filename=name).image for name_id, name in HOSTILE_NAMES.items()}


@pytest.mark.parametrize("name_id", list(HOSTILE_NAMES))
def test_the_name_never_shapes_the_key(uploaded: dict[str, dict[str, Any]], name_id: str) -> None:
    image = uploaded[name_id]
    assert KEY_PATTERN.match(image["key"]), image["key"]
    assert image["key"].startswith("alice/") and image["key"].endswith(".png")


@pytest.mark.parametrize("name_id", list(HOSTILE_NAMES))
def test_the_stored_name_is_sanitised(
    flow: Flow, uploaded: dict[str, dict[str, Any]], name_id: str
) -> None:
    image = uploaded[name_id]
    assert_sanitised(image["filename"])
    # The record read back (and the listing) shows the same sanitised name.
    again = flow.client.get(f"/images/{image['id']}", headers=auth())
    assert again.status_code == 200 and again.json["image"]["filename"] == image["filename"]
    doc = broker_of(flow.app).db.images.collection.find_one({"key": image["key"]})
    assert doc is not None and doc["filename"] == image["filename"]


@pytest.mark.parametrize("disposition", ["inline", "attachment"])
@pytest.mark.parametrize("name_id", list(HOSTILE_NAMES))
def test_the_signed_get_disposition_is_safe(
    flow: Flow, uploaded: dict[str, dict[str, Any]], name_id: str, disposition: str
) -> None:
    image = uploaded[name_id]
    signed = flow.client.get(
        f"/images/{image['id']}/signed-url?disposition={disposition}", headers=auth()
    )
    assert signed.status_code == 200
    assert_safe_disposition(disposition_of(signed.json["url"]), image["filename"], disposition)
    # The redirect and the batch call sign the same safe value.
    redirect = flow.client.get(
        f"/images/{image['id']}/content?disposition={disposition}", headers=auth()
    )
    assert redirect.status_code == 302
    assert_safe_disposition(
        disposition_of(redirect.headers["Location"]), image["filename"], disposition
    )


@pytest.mark.parametrize("name_id", list(HOSTILE_NAMES))
def test_the_bucket_serves_the_pinned_type_and_disposition(
    flow: Flow, uploaded: dict[str, dict[str, Any]], name_id: str
) -> None:
    image = uploaded[name_id]
    signed = flow.client.get(
        f"/images/{image['id']}/signed-url?disposition=attachment", headers=auth()
    )
    response = requests.get(signed.json["url"], timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == disposition_of(signed.json["url"])
    assert "X-Evil" not in response.headers


def test_nfc_and_nfd_spellings_store_the_same_name(uploaded: dict[str, dict[str, Any]]) -> None:
    assert uploaded["nfc"]["filename"] == uploaded["nfd"]["filename"] == "\u00e9t\u00e9.png"


def test_confirm_accepts_another_normalisation_of_the_presigned_name(flow: Flow) -> None:
    nfd_name = "e\u0301te\u0301.png"
    grant = flow.pending(filename=nfd_name)
    confirmed = flow.confirm(grant["key"], filename=unicodedata.normalize("NFC", nfd_name))
    assert confirmed.status_code == 201, confirmed.json


def test_long_names_keep_their_extension_within_255(uploaded: dict[str, dict[str, Any]]) -> None:
    for name_id in ("max length", "long non-ascii"):
        name = uploaded[name_id]["filename"]
        assert len(name) == 255 and name.endswith(".png"), (len(name), name[-8:])


def test_traversal_names_keep_only_their_last_segment(
    uploaded: dict[str, dict[str, Any]],
) -> None:
    assert uploaded["unix traversal"]["filename"] == "passwd.png"
    assert uploaded["windows traversal"]["filename"] == "win.png"
    assert uploaded["unc path"]["filename"] == "x.png"


@pytest.mark.parametrize("length", [1025, 10_000])
def test_names_over_1024_characters_are_refused(flow: Flow, length: int) -> None:
    response = flow.presign(filename="x" * (length - 4) + ".png")
    error = assert_envelope(response, 400, "validation_error")
    assert "filename" in error["details"]


def test_names_are_searchable_as_stored_not_as_sent(
    flow: Flow, uploaded: dict[str, dict[str, Any]]
) -> None:
    found = flow.client.get("/images?q=passwd.png&limit=100", headers=auth())
    assert found.status_code == 200
    assert uploaded["unix traversal"]["id"] in {image["id"] for image in found.json["images"]}
    none = flow.client.get("/images?q=../../etc&limit=100", headers=auth())
    assert none.status_code == 200 and none.json["images"] == []


@pytest.mark.parametrize("name", ["x.png.php", "\u202egnp.exe", "invoice.html", "drawing.svg"])
def test_the_offered_name_ends_with_the_verified_types_extension(flow: Flow, name: str) -> None:
    image = flow.upload(filename=name).image
    signed = flow.client.get(
        f"/images/{image['id']}/signed-url?disposition=attachment", headers=auth()
    )
    value = disposition_of(signed.json["url"])
    ascii_name = re.search(r'filename="([^"]*)"', value)
    assert ascii_name is not None and ascii_name.group(1).lower().endswith(".png"), value
    assert image["filename"].lower().endswith(".png"), image["filename"]
