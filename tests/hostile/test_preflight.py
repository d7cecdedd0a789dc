"""OPTIONS: CORS preflights (browsers send them before every cross-origin API call with a token)
and bare OPTIONS requests must never be a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.upload import Flow

ORIGIN = "http://localhost:8000"  # the default BROKER_CORS_ORIGINS

AUTHENTICATED_PATHS = [
    ("/images/presign-upload", "POST"),
    ("/images", "POST"),
    ("/images", "GET"),
    ("/images/0123456789abcdef01234567", "PATCH"),
    ("/images/0123456789abcdef01234567", "DELETE"),
    ("/images/0123456789abcdef01234567/signed-url", "GET"),
    ("/images/signed-urls", "POST"),
    ("/config", "GET"),
]


@pytest.fixture(scope="module")
def flow(module_flows: Callable[..., Flow]) -> Flow:
    return module_flows()


@pytest.mark.parametrize(("path", "method"), AUTHENTICATED_PATHS)
def test_a_cors_preflight_from_an_allowed_origin_succeeds(
    flow: Flow, path: str, method: str
) -> None:
    response = flow.client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204), response.get_data()[:300]
    assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN
    assert "authorization" in response.headers.get("Access-Control-Allow-Headers", "").lower()


@pytest.mark.parametrize(("path", "method"), AUTHENTICATED_PATHS[:3])
def test_a_bare_options_request_is_not_a_server_error(flow: Flow, path: str, method: str) -> None:
    response = flow.client.options(path)
    assert response.status_code < 500, response.get_data()[:300]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_options_on_public_routes_answers(flow: Flow, path: str) -> None:
    response = flow.client.options(path, headers={"Origin": ORIGIN})
    assert response.status_code in (200, 204)
    assert "GET" in response.headers.get("Allow", "")


def test_a_preflight_from_another_origin_is_not_allowed(flow: Flow) -> None:
    response = flow.client.options(
        "/healthz",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code < 500
    assert "Access-Control-Allow-Origin" not in response.headers
