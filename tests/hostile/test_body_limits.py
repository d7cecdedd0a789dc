"""Request bodies: the size limit before parsing, hostile JSON text, unknown fields, bounds.

Bodies over ``BROKER_MAX_BODY_BYTES`` answer 413 ``too_large`` whatever the framing (declared
length, a lying length, chunked transfer); anything that is not a JSON object of the right
shape answers 400 ``validation_error``; lists, strings and numbers have documented bounds.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from broker.http.request_head import MAX_REQUEST_LINE
from tests.support.envelope import assert_envelope
from tests.support.images import md5_b64
from tests.support.tokens import auth
from tests.support.upload import Flow, presign_body

LIMIT = 1024
JSON = {"Content-Type": "application/json"}


def _headers() -> dict[str, str]:
    return {**auth(), **JSON}


@pytest.fixture(scope="module")
def small(module_flows: Callable[..., Flow]) -> tuple[Flow, dict[str, Any]]:
    """An app whose body limit is 1 KiB, with one real image."""
    flow = module_flows(BROKER_MAX_BODY_BYTES=str(LIMIT))
    return flow, flow.upload().image


@pytest.fixture(scope="module")
def shared(module_flows: Callable[..., Flow]) -> tuple[Flow, dict[str, Any]]:
    """An app with the default limits and one real image, for cases refused before any write."""
    flow = module_flows()
    return flow, flow.upload().image


@pytest.fixture
def client(shared: tuple[Flow, dict[str, Any]]) -> FlaskClient:
    """The shared app's client."""
    return shared[0].client


@pytest.fixture
def flow(shared: tuple[Flow, dict[str, Any]]) -> Flow:
    """The shared app's flow."""
    return shared[0]


@pytest.fixture
def image(shared: tuple[Flow, dict[str, Any]]) -> dict[str, Any]:
    """The shared app's image."""
    return shared[1]


BODY_ENDPOINTS = [
    ("POST", "/images/presign-upload"),
    ("POST", "/images"),
    ("PATCH", "/images/{id}"),
    ("POST", "/images/signed-urls"),
    ("POST", "/images/{id}/usage"),
]


class TestSizeLimit:
    @pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
    def test_over_the_limit_is_413_on_every_body_endpoint(
        self, small: tuple[Flow, dict[str, Any]], method: str, path: str
    ) -> None:
        flow, image = small
        body = json.dumps({"caption": "x" * (LIMIT * 4)})
        response = flow.client.open(
            path.format(id=image["id"]), method=method, data=body, headers=_headers()
        )
        assert_envelope(response, 413, "too_large")

    def test_exactly_at_the_limit_is_parsed(self, small: tuple[Flow, dict[str, Any]]) -> None:
        flow, _ = small
        body = json.dumps(presign_body())
        body = body[:-1] + " " * (LIMIT - len(body)) + "}"
        assert len(body.encode()) == LIMIT
        assert (
            flow.client.post("/images/presign-upload", data=body, headers=_headers()).status_code
            == 201
        )

    def test_declared_length_over_the_limit_is_refused_before_reading(
        self, small: tuple[Flow, dict[str, Any]]
    ) -> None:
        flow, _ = small
        stream = io.BytesIO(json.dumps(presign_body()).encode())
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=stream,
            headers=_headers(),
            environ_overrides={"CONTENT_LENGTH": str(LIMIT * 100)},
        )
        assert_envelope(response, 413, "too_large")
        assert stream.tell() == 0  # not a byte was read

    def test_a_length_smaller_than_the_body_reads_no_further(
        self, small: tuple[Flow, dict[str, Any]]
    ) -> None:
        flow, _ = small
        raw = json.dumps(presign_body()).encode() + b" " * (LIMIT * 8)
        stream = io.BytesIO(raw)
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=stream,
            headers=_headers(),
            environ_overrides={"CONTENT_LENGTH": "10"},
        )
        assert_envelope(response, 400, "validation_error")  # '{"filename' is not JSON
        assert stream.tell() <= 10

    @pytest.mark.parametrize("length", ["abc", "-5", "", "1e3", " 12"])
    def test_a_garbage_length_reads_nothing(
        self, small: tuple[Flow, dict[str, Any]], length: str
    ) -> None:
        flow, _ = small
        stream = io.BytesIO(b"x" * (LIMIT * 8))
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=stream,
            headers=_headers(),
            environ_overrides={"CONTENT_LENGTH": length},
        )
        assert response.status_code in (400, 413)
        assert_envelope(response)
        assert stream.tell() <= LIMIT

    def test_chunked_without_a_terminating_server_reads_nothing(
        self, small: tuple[Flow, dict[str, Any]]
    ) -> None:
        # A WSGI server that does not de-chunk (no wsgi.input_terminated): the body is unsafe
        # to read, so nothing is read and the request is refused as having no JSON object.
        flow, _ = small
        stream = io.BytesIO(b"{" + b" " * (LIMIT * 8) + b"}")
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=stream,
            headers={**_headers(), "Transfer-Encoding": "chunked"},
        )
        assert_envelope(response, 400, "validation_error")
        assert stream.tell() == 0

    def test_chunked_over_the_limit_never_reads_past_it(
        self, small: tuple[Flow, dict[str, Any]]
    ) -> None:
        # gunicorn de-chunks and sets wsgi.input_terminated; at most the limit is read.
        flow, _ = small
        stream = io.BytesIO(b'{"caption": "' + b"x" * (LIMIT * 8) + b'"}')
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=stream,
            headers={**_headers(), "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert 400 <= response.status_code < 500
        assert_envelope(response)
        assert stream.tell() <= LIMIT + 1

    def test_chunked_over_the_limit_is_413(self, small: tuple[Flow, dict[str, Any]]) -> None:
        flow, _ = small
        stream = io.BytesIO(b'{"caption": "' + b"x" * (LIMIT * 8) + b'"}')
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=stream,
            headers={**_headers(), "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert_envelope(response, 413, "too_large")

    def test_chunked_over_the_limit_is_not_accepted_by_its_prefix(
        self, small: tuple[Flow, dict[str, Any]]
    ) -> None:
        flow, _ = small
        raw = json.dumps(presign_body()).encode() + b" " * (LIMIT * 8)
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=io.BytesIO(raw),
            headers={**_headers(), "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert_envelope(response, 413, "too_large")

    def test_chunked_under_the_limit_is_parsed(self, small: tuple[Flow, dict[str, Any]]) -> None:
        flow, _ = small
        response = flow.client.post(
            "/images/presign-upload",
            input_stream=io.BytesIO(json.dumps(presign_body()).encode()),
            headers={**_headers(), "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == 201

    def test_over_the_limit_without_a_token_is_still_an_envelope(
        self, small: tuple[Flow, dict[str, Any]]
    ) -> None:
        flow, _ = small
        response = flow.client.post(
            "/images/presign-upload", data="{" + " " * LIMIT * 4 + "}", headers=JSON
        )
        assert response.status_code in (401, 413)
        assert_envelope(response)


# ---- hostile JSON text -------------------------------------------------------------------------

VALID = json.dumps(presign_body())

NOT_AN_OBJECT = {
    "array": b"[1, 2]",
    "string": b'"photo.png"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "empty": b"",
    "whitespace": b"   \n\t ",
    "truncated": VALID[:-1].encode(),
    "trailing garbage": VALID.encode() + b" x",
    "two documents": VALID.encode() + VALID.encode(),
    "single quotes": VALID.replace('"', "'").encode(),
    "comment": b"/* c */" + VALID.encode(),
    "trailing comma": VALID[:-1].encode() + b",}",
    "invalid utf-8": VALID.replace("photo", "ph\udcffoto", 1).encode("utf-8", "surrogateescape"),
    "overlong utf-8": VALID.replace("photo", "ph\udcc0\udcafoto", 1).encode(
        "utf-8", "surrogateescape"
    ),
    "nul byte": b"\x00" + VALID.encode(),
    "nested 100 deep": b'{"a":' * 100 + b"1" + b"}" * 100,
    "form encoded": b"filename=photo.png&filetype=image/png&size=73",
}

WRONG_TYPES = {
    "size as string": {"size": "73"},
    "size as float": {"size": 73.0},
    "size as bool": {"size": True},
    "size as null": {"size": None},
    "size as list": {"size": [73]},
    "size as object": {"size": {"n": 73}},
    "size negative": {"size": -1},
    "size zero": {"size": 0},
    "filename as number": {"filename": 7},
    "filename as list": {"filename": ["a.png"]},
    "filename as object": {"filename": {"name": "a.png"}},
    "filename as null": {"filename": None},
    "filename empty": {"filename": ""},
    "filetype as list": {"filetype": ["image/png"]},
    "kind as null": {"kind": None},
    "kind as number": {"kind": 1},
    "caption as number": {"caption": 1},
    "caption as object": {"caption": {"text": "x"}},
    "content_md5 as number": {"content_md5": 5},
    "content_md5 not base64": {"content_md5": "not base64!"},
    "content_md5 wrong length": {"content_md5": "AAAA"},
    "checksum_sha256 wrong length": {"checksum_sha256": md5_b64(b"x")},
}


class TestParsing:
    @pytest.mark.parametrize("raw", NOT_AN_OBJECT.values(), ids=list(NOT_AN_OBJECT))
    def test_not_a_json_object_is_400(self, client: FlaskClient, raw: bytes) -> None:
        response = client.post("/images/presign-upload", data=raw, headers=_headers())
        assert_envelope(response, 400, "validation_error")

    @pytest.mark.parametrize(
        "raw",
        [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000],
        ids=["arrays", "objects"],
    )
    def test_deep_nesting_is_400(self, client: FlaskClient, raw: bytes) -> None:
        assert len(raw) < 65536
        response = client.post("/images/presign-upload", data=raw, headers=_headers())
        assert_envelope(response, 400, "validation_error")

    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None],
    )
    def test_a_json_body_under_another_content_type_is_400(
        self, client: FlaskClient, content_type: str | None
    ) -> None:
        headers = auth()
        if content_type:
            headers["Content-Type"] = content_type
        response = client.post("/images/presign-upload", data=VALID, headers=headers)
        assert_envelope(response, 400, "validation_error")

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
    @pytest.mark.parametrize("field", ["size", "filename", "caption"])
    def test_non_finite_number_literals_are_400(
        self, client: FlaskClient, literal: str, field: str
    ) -> None:
        body = presign_body(omit=(field,))
        raw = json.dumps(body)[:-1] + f', "{field}": {literal}}}'
        response = client.post("/images/presign-upload", data=raw, headers=_headers())
        assert_envelope(response, 400, "validation_error")

    @pytest.mark.parametrize(
        "number", ["1" + "0" * 400, "-" + "9" * 400, "1" + "0" * 5000, "73.0000000000000001"]
    )
    def test_huge_numbers_are_refused_without_a_crash(
        self, client: FlaskClient, number: str
    ) -> None:
        body = presign_body(omit=("size",))
        raw = json.dumps(body)[:-1] + f', "size": {number}}}'
        response = client.post("/images/presign-upload", data=raw, headers=_headers())
        assert response.status_code in (400, 413)
        assert_envelope(response)

    @pytest.mark.parametrize("case", WRONG_TYPES.values(), ids=list(WRONG_TYPES))
    def test_wrong_types_are_400(self, client: FlaskClient, case: dict[str, Any]) -> None:
        response = client.post(
            "/images/presign-upload", data=json.dumps(presign_body(**case)), headers=_headers()
        )
        error = assert_envelope(response, 400, "validation_error")
        (field,) = case
        assert field in error.get("details", {}) or field in error["message"]

    def test_a_byte_order_mark_is_tolerated_or_refused_never_a_crash(
        self, client: FlaskClient
    ) -> None:
        # RFC 8259 section 8.1 lets a parser ignore a BOM; the broker does. Either answer is
        # fine, as long as it is the same one the body without the BOM gets, or a clean 400.
        response = client.post(
            "/images/presign-upload", data=b"\xef\xbb\xbf" + VALID.encode(), headers=_headers()
        )
        if response.status_code >= 400:
            assert_envelope(response, 400, "validation_error")
        else:
            assert response.status_code == 201

    def test_duplicate_keys_are_400(self, client: FlaskClient) -> None:
        raw = VALID[:-1] + ', "filename": "other.png"}'
        response = client.post("/images/presign-upload", data=raw, headers=_headers())
        assert_envelope(response, 400, "validation_error")

    def test_duplicate_keys_never_let_a_refused_value_through(self, client: FlaskClient) -> None:
        # Whatever the duplicate handling, the value acted on is validated.
        raw = VALID[:-1] + ', "filetype": "text/html"}'
        response = client.post("/images/presign-upload", data=raw, headers=_headers())
        assert response.status_code in (400, 415)
        assert_envelope(response)


# ---- unknown fields and bounds -----------------------------------------------------------------


class TestStrictness:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/images/presign-upload", presign_body(owner="bob")),
            ("POST", "/images/presign-upload", presign_body(key="bob/x.png")),
            ("POST", "/images", {"key": "alice/x.png", "owner": "bob"}),
            ("PATCH", "/images/{id}", {"caption": "x", "owner": "bob"}),
            ("PATCH", "/images/{id}", {"key": "bob/x.png"}),
            ("PATCH", "/images/{id}", {"usage_count": 1000}),
            ("POST", "/images/signed-urls", {"ids": ["x"], "expires_in": 10}),
            ("POST", "/images/{id}/usage", {"count": 5}),
        ],
    )
    def test_unknown_fields_are_400_naming_the_field(
        self, flow: Flow, image: dict[str, Any], method: str, path: str, body: dict[str, Any]
    ) -> None:
        response = flow.client.open(
            path.format(id=image["id"]), method=method, data=json.dumps(body), headers=_headers()
        )
        error = assert_envelope(response, 400, "validation_error")
        known = {"filename", "filetype", "size", "content_md5", "key", "caption", "ids"}
        unknown = set(body) - known
        assert unknown <= set(error["details"]), error

    def test_ids_up_to_100(self, flow: Flow, image: dict[str, Any]) -> None:
        ids = [image["id"]] + ["f" * 24] * 99
        ok = flow.client.post("/images/signed-urls", json={"ids": ids}, headers=auth())
        assert ok.status_code == 200 and list(ok.json["urls"]) == [image["id"]]
        over = flow.client.post("/images/signed-urls", json={"ids": [*ids, "x"]}, headers=auth())
        assert "ids" in assert_envelope(over, 400, "validation_error")["details"]
        empty = flow.client.post("/images/signed-urls", json={"ids": []}, headers=auth())
        assert_envelope(empty, 400, "validation_error")

    def test_tags_up_to_20(self, flow: Flow, image: dict[str, Any]) -> None:
        path = f"/images/{image['id']}"
        tags = [f"t{i}" for i in range(20)]
        ok = flow.client.patch(path, json={"tags": tags}, headers=auth())
        assert ok.status_code == 200 and ok.json["image"]["tags"] == tags
        over = flow.client.patch(path, json={"tags": [*tags, "t20"]}, headers=auth())
        assert "tags" in assert_envelope(over, 400, "validation_error")["details"]

    @pytest.mark.parametrize(
        ("method", "path", "field", "limit"),
        [
            ("POST", "/images/presign-upload", "filename", 1024),
            ("POST", "/images/presign-upload", "filetype", 255),
            ("POST", "/images/presign-upload", "caption", 2000),
            ("POST", "/images/presign-upload", "kind", 64),
            ("POST", "/images/presign-upload", "content_md5", 64),
            ("POST", "/images", "key", 1024),
            ("POST", "/images", "caption", 2000),
            ("PATCH", "/images/{id}", "caption", 2000),
            ("PATCH", "/images/{id}", "tags", 50),
            ("POST", "/images/signed-urls", "ids", 64),
        ],
    )
    def test_string_lengths_are_bounded(
        self, flow: Flow, image: dict[str, Any], method: str, path: str, field: str, limit: int
    ) -> None:
        def body(value: str) -> dict[str, Any]:
            wrapped: Any = [value] if field in ("tags", "ids") else value
            if path == "/images/presign-upload":
                return presign_body(**{field: wrapped})
            if path == "/images":
                return {"key": image["key"], field: wrapped} if field != "key" else {"key": value}
            return {field: wrapped}

        url = path.format(id=image["id"])
        over = flow.client.open(url, method=method, json=body("x" * (limit + 1)), headers=auth())
        error = assert_envelope(over, 400, "validation_error")
        assert field in error["details"], error
        at = flow.client.open(url, method=method, json=body("x" * limit), headers=auth())
        # At the limit the length is accepted: any refusal is about the value, not the length.
        if at.status_code >= 400:
            problems = str(assert_envelope(at).get("details", {}).get(field, ""))
            assert "Length" not in problems, problems

    @pytest.mark.parametrize(
        ("query", "ok"),
        [
            ("limit=1", True),
            ("limit=100", True),
            ("limit=0", False),
            ("limit=101", False),
            ("limit=-1", False),
            ("limit=1.5", False),
            ("limit=1e2", False),
            ("limit=abc", False),
            ("limit=", False),
            ("limit=" + "9" * 50, False),
            ("limit=%00", False),
        ],
    )
    def test_list_limit_bounds(self, client: FlaskClient, query: str, ok: bool) -> None:
        response = client.get(f"/images?{query}", headers=auth())
        if ok:
            assert response.status_code == 200
        else:
            assert "limit" in assert_envelope(response, 400, "validation_error")["details"]

    @pytest.mark.parametrize(
        "value", ["0", "-1", "1.5", "abc", "", "1e3", "%00", "9" * 5000, "NaN", "Infinity"]
    )
    def test_bad_expires_in_is_400(self, flow: Flow, image: dict[str, Any], value: str) -> None:
        for path in (
            f"/images/{image['id']}/signed-url",
            f"/images/{image['id']}/content",
            f"/images/signed-url?key={image['key']}",
        ):
            sep = "&" if "?" in path else "?"
            response = flow.client.get(f"{path}{sep}expires_in={value}", headers=auth())
            if len(value) > MAX_REQUEST_LINE:
                # A request line past the limit is refused before its query is even parsed.
                assert "request_line" in assert_envelope(response, 413, "too_large")["details"]
                continue
            assert "expires_in" in assert_envelope(response, 400, "validation_error")["details"]

    @pytest.mark.parametrize("value", ["1", "3600", "3601", "86400000", "9" * 30])
    def test_expires_in_is_clamped_to_the_cap(
        self, flow: Flow, image: dict[str, Any], value: str
    ) -> None:
        before = datetime.now(UTC)
        response = flow.client.get(
            f"/images/{image['id']}/signed-url?expires_in={value}", headers=auth()
        )
        assert response.status_code == 200, response.json
        expires_at = datetime.fromisoformat(response.json["expires_at"].replace("Z", "+00:00"))
        # Never past the configured cap (default 1 hour), whatever was asked for.
        assert expires_at <= before + timedelta(seconds=3600 + 2)
        assert expires_at > before
