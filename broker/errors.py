"""The broker's errors and the one handler that renders every failure as the contract's envelope.

Every error a client can see is a :class:`BrokerError` subclass carrying its HTTP status and its
contract code. Anything else that escapes a view (routing, JWT, marshmallow, pymongo, a bug) is
translated here, so no response ever carries a stack trace, a credential or an internal endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError
from marshmallow import ValidationError
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException

from broker.metrics import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

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
        headers: Mapping[str, str] | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = dict(details) if details else None
        self.headers = dict(headers) if headers else {}
        if retry_after is not None:
            self.retry_after = retry_after
        if self.retry_after is not None:
            self.headers.setdefault("Retry-After", str(self.retry_after))
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
    """Too many requests; ``Retry-After`` says when to come back."""

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


# Werkzeug raises these for routing and request-level problems; each maps to a contract error.
_HTTP_STATUS_TO_ERROR: dict[int, type[BrokerError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: TooLarge,
    415: ValidationFailed,
    429: RateLimited,
}


def validation_message(messages: Mapping[str, Any]) -> str:
    """Flatten marshmallow's nested messages into one readable line (``field: problem; …``)."""
    parts = []
    for field, problems in sorted(messages.items()):
        if isinstance(problems, Mapping):
            parts.append(f"{field}: {validation_message(problems)}")
        elif isinstance(problems, list | tuple):
            parts.append(f"{field}: {' '.join(str(p) for p in problems)}")
        else:
            parts.append(f"{field}: {problems}")
    return "; ".join(parts) or "invalid request"


def to_broker_error(error: Exception) -> BrokerError:
    """Translate any exception into the contract error that describes it to a client."""
    if isinstance(error, BrokerError):
        return error
    if isinstance(error, ValidationError):
        messages = (
            error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        )
        return ValidationFailed(validation_message(messages), details=messages)
    if isinstance(error, JWTExtendedException | PyJWTError):
        return Unauthorized()
    if isinstance(error, ConnectionFailure):
        log.warning("MongoDB unavailable: %s", error)
        DEPENDENCY_ERRORS.labels("mongodb").inc()
        return Unavailable("the database is unavailable, retry later")
    if isinstance(error, HTTPException):
        error_class = _HTTP_STATUS_TO_ERROR.get(error.code or 500)
        if error_class is None:
            log.error("unmapped HTTP error %s: %s", error.code, error)
            return BrokerError()
        allowed = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        # Werkzeug's 400 descriptions (bad JSON, bad form) are generic and safe to show.
        message = error.description if error_class is ValidationFailed else None
        return error_class(message, headers=headers)
    log.exception("unexpected error", exc_info=error)
    return BrokerError()


def error_response(error: BrokerError) -> Response:
    """Render an error as the contract's JSON envelope."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    response = jsonify({"error": body})
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Route every exception through one handler that renders the envelope."""

    def handle(error: Exception) -> Response:
        return error_response(to_broker_error(error))

    app.register_error_handler(Exception, handle)
