"""The one error handler: every failure leaves the API as the contract's JSON envelope.

Errors of the taxonomy (:mod:`broker.errors`) are rendered as they are; what the web stack
raises (routing, JWT, marshmallow) is translated to the taxonomy first, and anything else (a
bug) becomes a bare ``internal_error``, so no response ever carries a stack trace, a credential
or an internal endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from broker.errors import (
    BrokerError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)

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
    if isinstance(error, HTTPException):
        error_class = _HTTP_STATUS_TO_ERROR.get(error.code or 500)
        if error_class is None:
            log.error("unmapped HTTP error %s: %s", error.code, error)
            return BrokerError()
        # Werkzeug's 400 descriptions (bad JSON, bad form) are generic and safe to show.
        message = error.description if error_class is ValidationFailed else None
        return error_class(message)
    log.exception("unexpected error", exc_info=error)
    return BrokerError()


def error_response(error: BrokerError, headers: Mapping[str, str] | None = None) -> Response:
    """Render an error as the contract's JSON envelope (with ``Retry-After`` when it has one)."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    response = jsonify({"error": body})
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers.update(headers or {})
    return response


def _allow_header(error: Exception) -> dict[str, str]:
    # A 405 names the methods the route does take.
    allowed = getattr(error, "valid_methods", None) if isinstance(error, HTTPException) else None
    return {"Allow": ", ".join(allowed)} if allowed else {}


def register_error_handlers(app: Flask) -> None:
    """Route every exception through one handler that renders the envelope."""

    def handle(error: Exception) -> Response:
        return error_response(to_broker_error(error), _allow_header(error))

    app.register_error_handler(Exception, handle)
