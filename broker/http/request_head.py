"""Bounding the request line and header fields, so oversized ones get the contract's envelope.

A server refuses what exceeds its own limits before any application sees the request, in its
own format (gunicorn: an HTML 414 or 431). ``gunicorn.conf.py`` therefore sets gunicorn's limits
above these, and this check refuses everything between with 413 ``too_large`` in JSON. Beyond
gunicorn's own ceiling (a request line over 8190 bytes: it cannot be raised) only a reverse
proxy in front can answer in JSON (see the README).
"""

from __future__ import annotations

from urllib.parse import quote

from flask import request

from broker.errors import TooLarge

# gunicorn's defaults, which the broker's own routes stay far below (keys, cursors and
# queries are bounded by the schemas; tokens are a few kB at most).
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELD = 8190
MAX_HEADER_FIELDS = 100

# Headers WSGI servers pass without the HTTP_ prefix.
_UNPREFIXED = ("CONTENT_TYPE", "CONTENT_LENGTH")


def request_line_length() -> int:
    """Bytes of the request line as the client sent it (method, target, protocol)."""
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:  # a server that keeps no raw target: rebuild it
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/%")
        query = environ.get("QUERY_STRING", "")
        target = f"{path}?{query}" if query else path
    # WSGI strings hold the raw bytes as latin-1 code points: one character per byte.
    return len(request.method) + len(target) + len(environ.get("SERVER_PROTOCOL", "")) + 2


def check_request_head() -> None:
    """Refuse a request whose line, any header field or number of fields is over the limit.

    Header fields are measured as ``name: value``; a name sent twice arrives joined into one
    field by the server and is measured so.
    """
    if request_line_length() > MAX_REQUEST_LINE:
        limit = f"at most {MAX_REQUEST_LINE} bytes"
        raise TooLarge(f"request line too long: {limit}", details={"request_line": [limit]})
    fields = [
        (name, value)
        for name, value in request.environ.items()
        if name.startswith("HTTP_") or name in _UNPREFIXED
    ]
    if len(fields) > MAX_HEADER_FIELDS:
        limit = f"at most {MAX_HEADER_FIELDS} header fields"
        raise TooLarge(f"too many header fields: {limit}", details={"headers": [limit]})
    for name, value in fields:
        size = len(name.removeprefix("HTTP_")) + 2 + len(str(value))
        if size > MAX_HEADER_FIELD:
            limit = f"at most {MAX_HEADER_FIELD} bytes per header field"
            raise TooLarge(f"header field too large: {limit}", details={"headers": [limit]})
