"""Flask and its response class, with two per-request costs worked out once instead of each time.

- **Hooks and views are known synchronous once checked.** Flask asks ``inspect`` whether every
  before/after/teardown hook and the view are coroutine functions on every request (seven calls
  per request here, a few percent of ``/healthz``); the answer for a registered function never
  changes, so :class:`BrokerFlask` remembers it.
- **Fixed headers skip werkzeug's validation.** The security headers, the request id and the
  CORS answer to a request without ``Origin`` are the same valid pairs (or a validated id) on
  nearly every response. Added through ``response.headers`` each is validated on the way in and
  again when werkzeug copies the headers for the WSGI server; :meth:`BrokerResponse.append_headers`
  keeps them aside and appends them to the list handed to the server, after werkzeug's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import FunctionType
from typing import Any

from flask import Flask
from flask import Response as FlaskResponse

# Enough for every registered hook and view; a caller making functions per request (none here)
# would only stop being remembered, never grow the table.
_MAX_REMEMBERED = 1024


class BrokerResponse(FlaskResponse):
    """Flask's response with header pairs appended to the WSGI list unvalidated (see the module)."""

    # Validated by whoever appends them: constants checked at start-up, or a checked request id.
    _appended: list[tuple[str, str]] | None = None

    def append_headers(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Send ``pairs`` after the response's own headers (valid header pairs only)."""
        if self._appended is None:
            self._appended = []
        self._appended.extend(pairs)

    def appended_headers(self) -> list[tuple[str, str]]:
        """The pairs :meth:`append_headers` was given, in order."""
        return list(self._appended or ())

    def get_wsgi_response(
        self, environ: dict[str, Any]
    ) -> tuple[Iterable[bytes], str, list[tuple[str, str]]]:
        """werkzeug's WSGI response, with the appended pairs after its headers."""
        app_iter, status, headers = super().get_wsgi_response(environ)
        if self._appended:
            headers.extend(self._appended)
        return app_iter, status, headers


class BrokerFlask(Flask):
    """Flask, answering with :class:`BrokerResponse` and checking each hook's kind once."""

    response_class = BrokerResponse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synchronous: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask's answer for ``func``, remembered for plain functions (they never change kind)."""
        if type(func) is not FunctionType:
            return super().ensure_sync(func)
        known = self._synchronous.get(func)
        if known is None:
            known = super().ensure_sync(func)
            if len(self._synchronous) < _MAX_REMEMBERED:
                self._synchronous[func] = known
        return known


def add_valid_headers(response: FlaskResponse, pairs: list[tuple[str, str]]) -> None:
    """Add ``pairs`` (valid header pairs only) to ``response``: appended unvalidated when it is a
    :class:`BrokerResponse`, through ``response.headers`` when it is of another class."""
    if isinstance(response, BrokerResponse):
        response.append_headers(pairs)
    else:
        response.headers.extend(pairs)
