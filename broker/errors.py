"""The broker's error taxonomy: every failure a client can see, as a status and a contract code.

Plain classes that import nothing: the domain, the use cases and the gateways (``broker.db``,
``broker.storage``) raise them, and :mod:`broker.http.errors` renders them as the contract's
JSON envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# How long clients should wait before retrying when a dependency is down or they are throttled.
DEFAULT_RETRY_AFTER_SECONDS = 5


class BrokerError(Exception):
    """Base of every error the API reports; subclasses fix the status and the contract code."""

    status = 500
    code = "internal_error"
    default_message = "internal error"
    retry_after: int | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = dict(details) if details else None
        if retry_after is not None:
            self.retry_after = retry_after
        super().__init__(self.message)


class ValidationFailed(BrokerError):
    """The body or query failed validation; ``details`` name the fields."""

    status = 400
    code = "validation_error"
    default_message = "invalid request"


class Unauthorized(BrokerError):
    """The token is missing, malformed, expired or badly signed."""

    status = 401
    code = "unauthorized"
    default_message = "missing or invalid token"


class Forbidden(BrokerError):
    """The caller is authenticated but not allowed to do this."""

    status = 403
    code = "forbidden"
    default_message = "not allowed"


class NotFound(BrokerError):
    """No such resource, or it belongs to someone else (ids cannot be probed)."""

    status = 404
    code = "not_found"
    default_message = "not found"


class MethodNotAllowed(BrokerError):
    """The route exists but not with this method."""

    status = 405
    code = "method_not_allowed"
    default_message = "method not allowed"


class Conflict(BrokerError):
    """The upload is no longer pending."""

    status = 409
    code = "conflict"
    default_message = "the upload is no longer pending"


class TooLarge(BrokerError):
    """A declared size or a request body is over its limit."""

    status = 413
    code = "too_large"
    default_message = "too large"


class UnsupportedType(BrokerError):
    """The declared content type is not on the allowlist."""

    status = 415
    code = "unsupported_type"
    default_message = "content type not allowed"


class UploadInvalid(BrokerError):
    """Confirm found the object missing or not what was declared."""

    status = 422
    code = "upload_invalid"
    default_message = "the uploaded object is not valid"


class RateLimited(BrokerError):
    """Too many requests; ``retry_after`` says when to come back."""

    status = 429
    code = "rate_limited"
    default_message = "too many requests"
    retry_after = DEFAULT_RETRY_AFTER_SECONDS


class Unavailable(BrokerError):
    """MongoDB or S3 cannot be reached; nothing was half-written."""

    status = 503
    code = "unavailable"
    default_message = "a backing service is unavailable, retry later"
    retry_after = DEFAULT_RETRY_AFTER_SECONDS
