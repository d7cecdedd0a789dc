"""Hostile request headers: a caller's X-Request-ID is echoed only when it is plainly safe, and
every answer, errors included, carries the API's protective headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from broker.http.request_head import MAX_HEADER_FIELD
from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import Flow

SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@pytest.fixture(scope="module")
def flow(module_flows: Callable[..., Flow]) -> Flow:
    return module_flows(BROKER_MAX_BODY_BYTES="1024")


@pytest.mark.parametrize(
    "supplied",
    [
        "abc\r\nSet-Cookie: stolen=1",
        "abc\nX-Evil: 1",
        "<script>alert(1)</script>",
        "x" * 10_000,
        "\u00e9\u202e\u200b",
        "a b",
        "../../etc/passwd",
        "id;rm -rf /",
        '"quoted"',
    ],
    ids=["crlf", "lf", "html", "10k", "unicode", "space", "path", "shell", "quotes"],
)
def test_a_hostile_request_id_is_replaced(flow: Flow, supplied: str) -> None:
    # Straight into the WSGI environ: the test client itself refuses newlines in headers.
    response = flow.client.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": supplied})
    if len(supplied) > MAX_HEADER_FIELD:
        # Over the header field limit: refused as gunicorn would, but in the envelope.
        assert_envelope(response, 413, "too_large")
    else:
        assert response.status_code == 200
    echoed = response.headers.get("X-Request-ID", "")
    assert SANE_ID.fullmatch(echoed), echoed
    assert echoed != supplied
    assert "Set-Cookie" not in response.headers and "X-Evil" not in response.headers


def test_a_sane_request_id_is_echoed(flow: Flow) -> None:
    response = flow.client.get("/healthz", headers={"X-Request-ID": "req-42.a:b_c"})
    assert response.headers["X-Request-ID"] == "req-42.a:b_c"


ERRORS: dict[str, Callable[[Flow], Any]] = {
    "400": lambda f: f.client.post("/images/presign-upload", data="[", headers=auth()),
    "401": lambda f: f.client.get("/images"),
    "404": lambda f: f.client.get("/nope", headers=auth()),
    "405": lambda f: f.client.put("/healthz"),
    "413": lambda f: f.client.post(
        "/images/presign-upload",
        data="{" + " " * 4096 + "}",
        headers={**auth(), "Content-Type": "application/json"},
    ),
}


@pytest.mark.parametrize("status", list(ERRORS))
def test_errors_carry_the_protective_headers(flow: Flow, status: str) -> None:
    response = ERRORS[status](flow)
    assert_envelope(response, int(status))
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert "default-src 'none'" in response.headers.get("Content-Security-Policy", "")
    assert SANE_ID.fullmatch(response.headers.get("X-Request-ID", ""))
    assert "Set-Cookie" not in response.headers


def test_signed_url_answers_are_not_cached(flow: Flow) -> None:
    image = flow.upload().image
    for path in (
        f"/images/{image['id']}/signed-url",
        f"/images/{image['id']}/content",
        f"/images/signed-url?key={image['key']}",
    ):
        response = flow.client.get(path, headers=auth())
        assert response.status_code in (200, 302)
        assert "no-store" in response.headers.get("Cache-Control", "")
    presigned = flow.presign()
    assert "no-store" in presigned.headers.get("Cache-Control", "")
