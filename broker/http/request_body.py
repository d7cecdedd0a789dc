"""Reading a JSON request body strictly: bounded, well-formed, unambiguous, storable.

Flask's ``get_json`` is lenient where an API facing the internet must not be: it accepts
duplicate keys (the last silently wins), NaN and Infinity, strings MongoDB cannot store (lone
UTF-16 surrogates), nesting deep enough to exhaust the parser's stack, and, for a chunked body
the server de-chunked (``wsgi.input_terminated``), whatever prefix fits under the size limit.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from broker.errors import TooLarge, ValidationFailed


def _invalid(reason: str) -> ValidationFailed:
    return ValidationFailed(f"the body must be {reason}", details={"_body": [f"must be {reason}"]})


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def raw_body() -> bytes:
    """The body bytes; 413 if they exceed the limit, whether or not a length was declared."""
    # The app's limit (BROKER_MAX_BODY_BYTES), unless the view set its own for this request.
    limit: int = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        # Werkzeug stops reading a de-chunked stream at the limit and hands back the prefix;
        # read one byte more to tell "exactly at the limit" from "over it".
        data: bytes = request.environ["wsgi.input"].read(limit + 1)
        if len(data) > limit:
            raise TooLarge("request body too large")
        return data
    return request.get_data(cache=True)  # Content-Length over the limit: 413 from Werkzeug


def json_object() -> dict[str, Any]:
    """The body as a JSON object, or ValidationFailed / TooLarge saying why not."""
    if not request.is_json:
        raise _invalid("a JSON object sent as application/json")
    raw = raw_body()
    try:
        data = json.loads(
            raw, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError):
        raise _invalid("a well-formed JSON object without duplicate keys") from None
    if not isinstance(data, dict):
        raise _invalid("a JSON object")
    try:
        # MongoDB stores UTF-8: a lone surrogate (\ud800) would fail there, not here.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("valid Unicode text (no lone surrogates)") from None
    return data


def has_body() -> bool:
    """Whether the request carries any body bytes."""
    return bool(raw_body())
