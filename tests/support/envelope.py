"""The contract's error envelope, checked strictly, and what no answer may leak."""

from __future__ import annotations

from typing import Any

# The contract's error codes by status.
CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    422: "upload_invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def assert_envelope(
    response: Any, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """The response is the contract's error envelope (with the status and code when given)."""
    if status is not None:
        assert response.status_code == status, (response.status_code, response.get_data()[:500])
    assert 400 <= response.status_code < 600, response.status_code
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["code"] == CODES[response.status_code], (response.status_code, error)
    if code is not None:
        assert error["code"] == code, error
    if "details" in error:
        assert isinstance(error["details"], dict), error
    return error


def api_error(response: Any) -> tuple[int, str]:
    """(status, error code) of an answer: what a refusal is compared by."""
    return response.status_code, response.get_json()["error"]["code"]


def assert_no_leak(response: Any, *secrets: str) -> None:
    """No stack trace, internal endpoint or other secret appears in the response body."""
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    for secret in secrets:
        if secret:
            assert secret not in text


def assert_unavailable(response: Any) -> None:
    """A 503 envelope with a Retry-After, naming neither a service's address nor a URI."""
    assert_envelope(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert_no_leak(response, "mongodb://", "127.0.0.1")
