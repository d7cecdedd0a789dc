"""The vendored Uppy bundle (``make vendor``) in headless Chromium, under the admin UI's CSP.

A test module (``tests/browser/uppy_probe.mjs``) is added to the real ``/admin/`` page, so the
admin UI's own Content-Security-Policy applies. It imports ``/static/vendor/uppy.min.mjs``,
mounts the Dashboard inline and drives the broker's single-PUT flow through AwsS3's
``signRequest``, whose returned ``headers`` (new in @uppy/aws-s3 6.2) carry the signed
Content-MD5.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import FilePayload, Route, expect

from tests.support import REPO
from tests.support.browser import UI, DemoBroker
from tests.support.images import gradient_png

pytestmark = pytest.mark.browser

PROBE = Path(__file__).resolve().parent / "uppy_probe.mjs"
PROBE_PATH = "/__uppy_probe__/probe.mjs"
BUNDLE = "/static/vendor/uppy.min.mjs"
STYLES = "/static/vendor/uppy.min.css"


def test_the_bundle_is_served_and_matches_the_pinned_packages(demo: DemoBroker) -> None:
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]
    for path, content_type in ((BUNDLE, "text/javascript"), (STYLES, "text/css")):
        asset = requests.get(demo.base_url + path, timeout=10)
        assert asset.status_code == 200, path
        assert asset.headers["Content-Type"].startswith(content_type), path
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        # The licence banner opens the file and names the Uppy packages at their pinned versions.
        banner = asset.text[: asset.text.index("*/")]
        assert asset.text.startswith("/*! ")
        for name in ("@uppy/core", "@uppy/dashboard"):
            assert f"\n{name}@{pinned[name]} (MIT)\n" in banner, (path, name)
            assert "Permission is hereby granted" in banner
        if path == BUNDLE:
            assert f"\n@uppy/aws-s3@{pinned['@uppy/aws-s3']} (MIT)\n" in banner
            assert re.search(r"export\{[^}]*\bas AwsS3\b", asset.text)


def test_dashboard_uploads_under_the_admin_csp(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    probe_source = PROBE.read_bytes()

    def serve_probe(route: Route) -> None:
        route.fulfill(
            status=200,
            body=probe_source,
            headers={"Content-Type": "text/javascript; charset=utf-8"},
        )

    # The real admin page, so the CSP is the one the broker sends; the probe module is added the
    # way any same-origin script would be (script-src 'self').
    page.route(demo.base_url + PROBE_PATH, serve_probe)
    response = page.goto(demo.base_url + "/admin/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    page.evaluate(
        """(src) => {
            const script = document.createElement("script");
            script.type = "module";
            script.src = src;
            document.head.append(script);
        }""",
        f"{PROBE_PATH}#token={demo.token}",
    )
    page.locator("#uppy[data-ready=true]").wait_for(state="attached")

    # Mounted inline, styled by the vendored stylesheet (style-src 'self'), and sized by the
    # style Dashboard sets through the CSSOM (which CSP allows, unlike a style attribute).
    inner = page.locator("#uppy .uppy-Dashboard:not(.uppy-Dashboard--modal) .uppy-Dashboard-inner")
    expect(inner).to_be_visible()
    styles = inner.evaluate(
        "(el) => [getComputedStyle(el).borderRadius, el.style.height, getComputedStyle(el).height]"
    )
    assert styles == ["5px", "420px", "420px"]

    png = gradient_png(96, 64, (30, 64, 175), (191, 219, 254))
    page.locator(".uppy-Dashboard-input").first.set_input_files(
        files=[FilePayload(name="lake.png", mimeType="image/png", buffer=png)]
    )
    # The thumbnail (a blob: URL, img-src allows blob:) renders.
    thumbnail = page.locator(".uppy-Dashboard-Item-previewImg")
    expect(thumbnail).to_be_visible()
    page.wait_for_function(
        "() => { const img = document.querySelector('.uppy-Dashboard-Item-previewImg');"
        " return img && img.complete && img.naturalWidth > 0; }"
    )

    page.locator(".uppy-StatusBar-actionBtn--upload").click()
    page.wait_for_function("() => window.uppyProbe.images.length + window.uppyProbe.errors.length")
    probe = page.evaluate("() => window.uppyProbe")
    assert probe["errors"] == [], ui.console_errors

    # What signRequest was given: the method, the key Uppy proposed (the file's id) and the
    # content type: no file, size or body, which is why the page keeps its own map.
    (signed,) = probe["signRequests"]
    assert sorted(signed) == ["contentType", "key", "method"]
    assert signed["method"] == "PUT" and signed["contentType"] == "image/png"

    # The PUT went straight to the bucket with the headers the broker signed.
    (put,) = [r for r in ui.requests if r.method == "PUT" and r.url.startswith(demo.s3_endpoint)]
    headers = put.all_headers()
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(png).digest()).decode()
    assert headers["content-type"] == "image/png"

    (image,) = probe["images"]
    assert (image["filename"], image["size"]) == ("lake.png", len(png))
    assert [i["id"] for i in demo.all_images()] == [image["id"]]
    assert demo.bucket_keys() == [image["key"]]
    expect(page.locator(".uppy-StatusBar.is-complete")).to_be_visible()
    ui.assert_clean()
