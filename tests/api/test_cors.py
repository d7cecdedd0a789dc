"""CORS headers: the shortcut for requests without an ``Origin`` answers exactly as Flask-CORS.

The broker adds the headers of an origin-less request itself, computed once at start-up
(broker/http/cors.py); every header of every response must be what Flask-CORS alone would have
sent, for any configuration of origins, any method, any status.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.support.tokens import auth

IMAGE = "/images/0123456789abcdef01234567"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}
# (method, path, headers, JSON body): success, 401, 404, 400, 405, preflights and plain OPTIONS,
# with no Origin, an allowed one, a refused one.
REQUESTS: list[tuple[str, str, dict[str, str], object]] = [
    ("GET", "/healthz", {}, None),
    ("HEAD", "/healthz", {}, None),
    ("GET", "/config", auth("alice"), None),
    ("GET", "/images", {}, None),
    ("GET", IMAGE + "/signed-url", auth("alice"), None),
    ("GET", "/no/such/path", {}, None),
    ("POST", "/images/presign-upload", auth("alice"), {"nonsense": 1}),
    ("PUT", "/healthz", {}, None),
    ("DELETE", IMAGE, auth("alice"), None),
    ("OPTIONS", "/images/presign-upload", {}, None),
    ("OPTIONS", "/images/presign-upload", PREFLIGHT, None),
    ("OPTIONS", "/images/presign-upload", {"Origin": "https://app.example", **PREFLIGHT}, None),
    ("OPTIONS", "/images/presign-upload", {"Origin": "https://evil.example", **PREFLIGHT}, None),
    ("GET", "/images", {"Origin": "https://app.example", **auth("alice")}, None),
    ("GET", "/images", {"Origin": "https://evil.example", **auth("alice")}, None),
    ("GET", "/healthz", {"Origin": "https://app.example"}, None),
]
ORIGINS = ["https://app.example", "https://app.example,https://admin.example", "*"]


def shortcut_removed(app: Flask) -> Flask:
    """``app`` with the broker's own origin-less hook taken out: Flask-CORS does it all."""
    hooks = app.after_request_funcs[None]
    ours = [hook for hook in hooks if hook.__name__ == "originless_cors"]
    assert len(ours) == 1, "the origin-less CORS hook is registered once"
    hooks.remove(ours[0])
    return app


@pytest.mark.parametrize("origins", ORIGINS)
def test_every_response_carries_the_headers_flask_cors_would_send(
    make_app: Callable[..., Flask], origins: str
) -> None:
    ours = make_app(BROKER_CORS_ORIGINS=origins).test_client()
    reference = shortcut_removed(make_app(BROKER_CORS_ORIGINS=origins)).test_client()
    for method, path, headers, body in REQUESTS:
        # A fixed request id: everything else in the headers is decided by the request.
        sent = {**headers, "X-Request-ID": "cors-test"}
        got = ours.open(path, method=method, headers=sent, json=body)
        want = reference.open(path, method=method, headers=sent, json=body)
        assert (got.status_code, sorted(got.headers.items())) == (
            want.status_code,
            sorted(want.headers.items()),
        ), f"{method} {path} {headers}"


def test_an_originless_request_is_told_the_allowed_origins(
    make_app: Callable[..., Flask],
) -> None:
    # What Flask-CORS's always_send gives: the literal origins and the exposed headers.
    client = make_app(BROKER_CORS_ORIGINS="https://app.example").test_client()
    response = client.get("/healthz")
    assert response.headers.getlist("Access-Control-Allow-Origin") == ["https://app.example"]
    assert response.headers["Access-Control-Expose-Headers"] == "Retry-After, X-Request-ID"
