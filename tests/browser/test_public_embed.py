"""A public link in an ``<img>`` on someone else's page, in Chromium.

The page is a plain HTML file served from a second HTTP server on another origin (another host
name and port), as a blog or a shop embedding a user's picture would. The broker serving the
link runs over HTTP with a one-second lookup cache; the image is turned private through another
app on the same database (another process, as far as that cache knows), so the link must die
within the cache's TTL without this process being told.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
from flask import Flask
from playwright.sync_api import BrowserContext, Page, Request, Response

from broker.demo import serve
from broker.devservers import free_port
from tests.support.images import gradient_png
from tests.support.tokens import auth
from tests.support.upload import upload

pytestmark = pytest.mark.browser

CACHE_TTL_S = 1


@dataclass
class Embedding:
    """The broker (over HTTP) and a page on another origin that embeds one of its images."""

    broker_url: str
    page_url: str
    public_url: str
    image_id: str
    other_process: Flask  # another app on the same database: changes made there
    html: dict[str, str]  # path → the page served there


class _Pages(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path.partition("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write((body or "not found").encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reports what matters."""


@contextlib.contextmanager
def other_origin(pages: dict[str, str]) -> Iterator[str]:
    """A plain HTTP server for ``pages`` on localhost (the broker is on 127.0.0.1)."""
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="other-origin", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def embedding(make_app: Callable[..., Flask]) -> Iterator[Embedding]:
    port = free_port()
    broker_url = f"http://127.0.0.1:{port}"
    settings = {"BROKER_LOOKUP_CACHE_TTL": str(CACHE_TTL_S), "BROKER_PUBLIC_URL": broker_url}
    served, other = make_app(**settings), make_app(**settings)
    picture = gradient_png(160, 120, (56, 189, 248), (30, 64, 175))
    image = upload(served.test_client(), picture, visibility="public").image
    assert image["public_url"].startswith(broker_url + "/p/")
    pages: dict[str, str] = {}
    with contextlib.ExitStack() as running, other_origin(pages) as origin:
        serve(served, "127.0.0.1", port, running)
        yield Embedding(broker_url, origin, image["public_url"], image["id"], other, pages)


# A dead link, as the browser reports it: the broker's 404, or the same 404 that Chromium's
# Opaque Response Blocking turned into a network error (a cross-origin <img> answered with JSON).
DEAD_LINK = {404, "net::ERR_BLOCKED_BY_ORB"}


def outcome(request: Request) -> int | str:
    """How a request the page made ended: its status, or the network error that ended it."""
    answer = request.response()  # waits for the answer, or None when the request failed
    if answer is None:
        assert request.failure is not None, request.url
        return request.failure
    return answer.status


def show(page: Page, url: str) -> int:
    """Load ``url`` in a fresh ``<img>`` on the page; its naturalWidth (0 when nothing shows)."""
    width: int = page.evaluate(
        """(url) => new Promise((resolve) => {
            const img = document.createElement("img");
            img.onload = () => resolve(img.naturalWidth);
            img.onerror = () => resolve(img.naturalWidth);
            img.src = url;
            document.body.append(img);
        })""",
        url,
    )
    return width


def test_a_page_on_another_origin_shows_a_public_image_until_it_turns_private(
    context: BrowserContext, embedding: Embedding
) -> None:
    embedding.html["/post.html"] = (
        "<!doctype html><html><head><title>A blog post</title></head><body>"
        f'<p>My picture:</p><img id="pic" alt="" src="{embedding.public_url}">'
        "</body></html>"
    )
    page = context.new_page()
    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer))
    try:
        page.goto(embedding.page_url + "/post.html")
        page.wait_for_function(
            "() => { const img = document.getElementById('pic');"
            " return img.complete && img.naturalWidth > 0; }"
        )
        assert page.evaluate("() => document.getElementById('pic').naturalWidth") == 160
        link = next(a for a in answers if a.url == embedding.public_url)
        assert link.status == 302
        assert link.headers["referrer-policy"] == "no-referrer"
        assert link.headers["cache-control"].startswith("public, max-age=")
        fetched = next(a for a in answers if a.request.redirected_from is not None)
        assert fetched.status == 200 and fetched.request.redirected_from.url == link.url
        # The broker hears which site embeds its link (the page's own referrer policy); the
        # bucket, after the redirect's no-referrer, not even that.
        assert link.request.all_headers().get("referer") == embedding.page_url + "/"
        assert not fetched.request.all_headers().get("referer")

        # Turned private elsewhere (another process); this broker's cache still holds the image
        # for at most its TTL. After it, a fresh load (the URL's own 302 may sit in the browser's
        # cache; a new parameter, which the link ignores, asks the broker anew) shows nothing.
        response = embedding.other_process.test_client().patch(
            f"/images/{embedding.image_id}", json={"visibility": "private"}, headers=auth()
        )
        assert response.status_code == 200
        time.sleep(CACHE_TTL_S + 0.2)
        fresh = embedding.public_url + "?reload=1"
        with page.expect_request(lambda asked: asked.url == fresh) as dead:
            assert show(page, fresh) == 0
        assert outcome(dead.value) in DEAD_LINK
        # The page itself, opened again once the browser holds no copy of the redirect (as
        # after its max-age): its <img> of the very same link shows nothing.
        devtools = context.new_cdp_session(page)
        devtools.send("Network.clearBrowserCache")
        devtools.detach()
        page.close()
        page = context.new_page()
        with page.expect_request(lambda asked: asked.url == embedding.public_url) as again:
            page.goto(embedding.page_url + "/post.html")
        page.wait_for_function("() => document.getElementById('pic').complete")
        assert page.evaluate("() => document.getElementById('pic').naturalWidth") == 0
        assert outcome(again.value) in DEAD_LINK
        # What the browser was answered (it keeps a blocked body from the page): the envelope.
        answer = requests.get(embedding.public_url, allow_redirects=False, timeout=10)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
        assert answer.headers["Cache-Control"] == "no-store"
    finally:
        page.close()
