"""A view's input and output: parsed and serialized by marshmallow schemas, as JSON.

Bodies are read strictly (:mod:`broker.http.request_body`), queries from the URL; a schema
refuses what does not fit (a ValidationError, which the one error handler renders as 400).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from marshmallow import Schema

from broker.http import request_body

# Signed URLs and upload grants are credentials: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}


def body(schema: Schema) -> dict[str, Any]:
    """The JSON object body, validated by ``schema``."""
    loaded: dict[str, Any] = schema.load(request_body.json_object())
    return loaded


def optional_body(schema: Schema) -> dict[str, Any]:
    """An optional JSON object body (none at all reads as ``{}``)."""
    if not request_body.has_body():
        return {}
    return body(schema)


def query(schema: Schema) -> dict[str, Any]:
    """The query string, validated by ``schema``."""
    loaded: dict[str, Any] = schema.load(request.args.to_dict())
    return loaded


def json_response(
    schema: Schema, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``data`` as ``schema`` dumps it, with the status and extra headers given."""
    response = jsonify(schema.dump(data))
    response.status_code = status
    response.headers.update(headers or {})
    return response
