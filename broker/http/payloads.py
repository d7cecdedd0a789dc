"""A view's input and output: parsed and serialized by marshmallow schemas, as JSON.

Bodies are read strictly (:mod:`broker.http.request_body`), queries from the URL; a schema
refuses what does not fit (a ValidationError, which the one error handler renders as 400).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema

from broker.extension import current_broker
from broker.http import request_body
from broker.schemas import LINKS, Links

# Signed URLs and upload grants are credentials: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}

# What jsonify writes out of debug mode with the app's provider as the factory sets it (keys in
# the order given, ASCII only, compact, Flask's conversions of dates and the like), from one
# encoder: jsonify works out its arguments and builds a new encoder on every call.
_ENCODER = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), default=DefaultJSONProvider.default
)


def body(schema: Schema | Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The JSON object body, validated by ``schema`` (or by a hot path's plain function
    compiled from one, ``schemas.plain_load``)."""
    data = request_body.json_object()
    loaded: dict[str, Any] = schema.load(data) if isinstance(schema, Schema) else schema(data)
    return loaded


def optional_body(schema: Schema) -> dict[str, Any]:
    """An optional JSON object body (none at all reads as ``{}``)."""
    if not request_body.has_body():
        return {}
    return body(schema)


def query(schema: Schema) -> dict[str, Any]:
    """The query string, validated by ``schema``."""
    if not request.query_string:
        # Most requests carry none: the schema's defaults, loaded once per schema.
        return dict(_defaults(schema))
    loaded: dict[str, Any] = schema.load(request.args.to_dict())
    return loaded


# Schemas are module-level singletons (broker.schemas), so the cache stays as small as they are.
_DEFAULTS: dict[Schema, dict[str, Any]] = {}


def _defaults(schema: Schema) -> dict[str, Any]:
    """What ``schema`` loads from an empty query (raising as it does when a field is required).

    Only plain ``load_default`` values are remembered: a schema whose empty load could differ
    from call to call (a callable default, a load hook) is loaded every time."""
    cached = _DEFAULTS.get(schema)
    if cached is not None:
        return cached
    loaded: dict[str, Any] = schema.load({})
    if _constant_empty_load(schema):
        _DEFAULTS[schema] = loaded
    return loaded


def _constant_empty_load(schema: Schema) -> bool:
    hooks = getattr(schema, "_hooks", None)  # marshmallow's registry of load/dump hooks
    if hooks is None or any(hooks.values()):
        return False
    return not any(callable(field.load_default) for field in schema.fields.values())


def json_response(
    schema: Schema, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``data`` as ``schema`` dumps it, with the status and extra headers given."""
    return json_answer(schema.dump, data, status, headers)


def json_answer(
    dump: Callable[[Any], Any],
    data: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """``data`` as ``dump`` writes it (a schema's ``dump``, or a hot path's plain function
    compiled from one), with the status and extra headers given."""
    with LINKS(Links(public_base_url)):
        dumped = dump(data)
    response = json_document(dumped)
    if status != 200:
        response.status_code = status
    if headers:
        # A fresh response holds only its own Content-Type and Content-Length: add, not set.
        response.headers.extend(headers)
    return response


def json_document(data: Any) -> Response:
    """``data`` as ``jsonify`` answers it out of debug mode (the same bytes and content type)."""
    return current_app.response_class(_ENCODER.encode(data) + "\n", mimetype="application/json")


def public_base_url() -> str:
    """Where clients reach the broker: ``BROKER_PUBLIC_URL``, else this request's own root
    (behind ``BROKER_TRUSTED_PROXIES`` proxies, as the client asked for it)."""
    return current_broker().settings.public_url or request.url_root
