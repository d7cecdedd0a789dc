"""BrokerFlask and BrokerResponse: what they remember and append changes nothing on the wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response
from werkzeug.test import EnvironBuilder

from broker.http.framework import BrokerFlask, BrokerResponse

Pairs = list[tuple[str, str]]


def wsgi_headers(app: Flask, path: str = "/", method: str = "GET") -> tuple[str, Pairs, bytes]:
    """Status, the header list the WSGI server is handed, and the body, for one request."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: Pairs, exc_info: object = None) -> Callable[..., Any]:
        answer.update(status=status, headers=headers)
        return lambda data: None

    chunks = app(EnvironBuilder(path=path, method=method).get_environ(), start_response)
    body = b"".join(chunks)
    return answer["status"], answer["headers"], body


class TestEnsureSync:
    def test_a_plain_function_is_returned_as_it_is_and_remembered(self) -> None:
        app = BrokerFlask("t")

        def hook() -> None:
            """A synchronous hook."""

        assert app.ensure_sync(hook) is hook
        assert app.ensure_sync(hook) is hook
        assert app._synchronous == {hook: hook}

    def test_a_coroutine_function_gets_flasks_own_answer(self) -> None:
        async def view() -> str:
            return "x"

        # Flask wraps it (with asgiref) or says it needs the async extra: either way the same.
        def outcome(app: Flask) -> object:
            try:
                return type(app.ensure_sync(view))
            except RuntimeError as exc:
                return str(exc)

        assert outcome(BrokerFlask("t")) == outcome(Flask("t"))

    def test_other_callables_are_never_remembered(self) -> None:
        app = BrokerFlask("t")

        class Hook:
            def __call__(self) -> None:
                """A callable object: its kind is asked each time."""

        hook = Hook()
        assert app.ensure_sync(hook) is hook
        assert app._synchronous == {}

    def test_the_table_stops_growing_at_its_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("broker.http.framework._MAX_REMEMBERED", 2)
        app = BrokerFlask("t")
        made = []
        for _ in range(5):

            def hook() -> None:
                """A function made anew each time."""

            made.append(hook)
            assert app.ensure_sync(hook) is hook
        assert list(app._synchronous) == made[:2]


class TestAppendedHeaders:
    @pytest.fixture
    def app(self) -> BrokerFlask:
        app = BrokerFlask("t")

        @app.get("/")
        def index() -> Response:
            response = app.response_class("hello", mimetype="text/plain")
            assert isinstance(response, BrokerResponse)
            response.headers["X-Own"] = "own"
            response.append_headers([("X-Fixed", "a"), ("X-Fixed", "b")])
            response.append_headers([("X-Later", "c")])
            return response

        @app.get("/empty")
        def empty() -> Response:
            response = app.response_class(status=204)
            assert isinstance(response, BrokerResponse)
            response.append_headers([("X-Fixed", "a")])
            return response

        return app

    def test_they_follow_the_responses_own_headers_in_order(self, app: BrokerFlask) -> None:
        status, headers, body = wsgi_headers(app)
        assert status == "200 OK" and body == b"hello"
        assert headers == [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "5"),
            ("X-Own", "own"),
            ("X-Fixed", "a"),
            ("X-Fixed", "b"),
            ("X-Later", "c"),
        ]

    def test_a_head_request_and_a_204_carry_them_too(self, app: BrokerFlask) -> None:
        _, head, body = wsgi_headers(app, method="HEAD")
        assert body == b"" and head[-3:] == [("X-Fixed", "a"), ("X-Fixed", "b"), ("X-Later", "c")]
        status, headers, _ = wsgi_headers(app, "/empty")
        assert status == "204 NO CONTENT" and headers[-1] == ("X-Fixed", "a")

    def test_the_test_client_sees_them_as_any_header(self, app: BrokerFlask) -> None:
        response = app.test_client().get("/")
        assert response.headers.getlist("X-Fixed") == ["a", "b"]
        assert response.headers["X-Later"] == "c"

    def test_they_are_kept_aside_from_the_headers_hooks_see(self, app: BrokerFlask) -> None:
        seen: list[Pairs] = []

        @app.after_request
        def look(response: Response) -> Response:
            seen.append(list(response.headers.items()))
            assert isinstance(response, BrokerResponse)
            seen.append(response.appended_headers())
            return response

        app.test_client().get("/")
        assert ("X-Fixed", "a") not in seen[0]
        assert seen[1] == [("X-Fixed", "a"), ("X-Fixed", "b"), ("X-Later", "c")]
