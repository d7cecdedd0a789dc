"""Cross-origin access to the API: Flask-CORS, with the answer to a request that names no
origin worked out once.

Browsers send ``Origin`` on every cross-origin request; most API traffic (servers, apps, curl,
same-origin pages) sends none, and Flask-CORS would work out the same headers for each of those
on every response (matching the path, resolving the origins, building a MultiDict). Here they
are computed at start-up and added by :func:`add_originless_headers`, registered after
Flask-CORS so it runs first: Flask-CORS then finds ``Access-Control-Allow-Origin`` set and leaves
the response alone, as it does for any response already evaluated. Requests with an ``Origin``
and every OPTIONS request (preflights) go through Flask-CORS untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, request
from flask_cors import CORS
from flask_cors.core import ACL_ORIGIN, get_cors_headers, get_cors_options
from werkzeug.datastructures import Headers

from broker.http.framework import add_valid_headers
from broker.settings import Settings


def init_cors(app: Flask, settings: Settings) -> None:
    """Allow the configured origins to call the API from a browser."""
    # Tokens travel in the Authorization header, never cookies, so credentials stay off.
    options = {
        "origins": list(settings.cors_origins),
        "allow_headers": ["Authorization", "Content-Type", "X-Request-ID"],
        "expose_headers": ["Retry-After", "X-Request-ID"],
        "methods": ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        "max_age": 600,
        "supports_credentials": False,
    }
    CORS(app, **options)  # type: ignore[arg-type]
    answer = get_cors_headers(get_cors_options(app, options), Headers(), "GET")
    originless = [(name, str(value)) for name, value in answer.items(multi=True)]
    if originless:
        app.after_request(add_originless_headers(originless))


def add_originless_headers(headers: list[tuple[str, str]]) -> Callable[[Response], Response]:
    """The after-request hook giving a request without ``Origin`` the CORS headers Flask-CORS
    would give it (its ``always_send`` answer, the same for every such request)."""
    # Flask-CORS's own hook runs next and skips a response that has Access-Control-Allow-Origin
    # in its headers: that one goes there; the rest are appended unvalidated (valid constants).
    in_headers = [pair for pair in headers if pair[0] == ACL_ORIGIN]
    appended = [pair for pair in headers if pair[0] != ACL_ORIGIN]

    def originless_cors(response: Response) -> Response:
        if (
            request.method != "OPTIONS"
            and "HTTP_ORIGIN" not in request.environ
            and ACL_ORIGIN not in response.headers
        ):
            response.headers.extend(in_headers)
            add_valid_headers(response, appended)
        return response

    return originless_cors
