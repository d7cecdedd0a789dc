"""The admin UI and the browser module, driven in headless Chromium against ``make run``'s broker.

Every byte goes browser → bucket directly; at the end of the flow the API (MongoDB) and the
bucket (asked with boto3) must agree.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import FilePayload, Route, expect

from tests.support.browser import PHONE, TOKEN_KEY, UI, DemoBroker, canvas_jpeg, drop_files
from tests.support.images import gradient_png, md5_b64

pytestmark = pytest.mark.browser

XSS_NAME = "<img src=x onerror=alert(1)>.png"


def expected_csp(demo: DemoBroker) -> str:
    origin = demo.s3_endpoint.rstrip("/")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' blob: data: {origin}; connect-src 'self' {origin}; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def test_admin_pages_carry_a_strict_csp(demo: DemoBroker) -> None:
    page = requests.get(demo.base_url + "/admin/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == expected_csp(demo)
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-cache"
    # No inline script or style for the CSP to allow.
    assert "<script>" not in page.text and "style=" not in page.text and "<style" not in page.text

    redirect = requests.get(demo.base_url + "/admin", allow_redirects=False, timeout=10)
    assert redirect.status_code in (301, 308)
    assert redirect.headers["Location"].endswith("/admin/")

    for path in ("/static/broker.js", "/static/admin/admin.js", "/static/vendor/spark-md5.js"):
        asset = requests.get(demo.base_url + path, timeout=10)
        assert asset.status_code == 200, path
        assert asset.headers["Content-Type"].startswith("text/javascript"), path
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.headers["Cache-Control"] == "no-cache"
        assert "Authorization" not in asset.request.headers  # public: no token needed
        revalidated = requests.get(
            demo.base_url + path, headers={"If-None-Match": asset.headers["ETag"]}, timeout=10
        )
        assert revalidated.status_code == 304

    missing = requests.get(demo.base_url + "/static/admin/nope.js", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_upload_browse_edit_delete(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    ui.sign_in()

    # Signed in from the fragment: the token moved to sessionStorage and left the address bar.
    assert "token" not in page.url and page.url.endswith("/admin/")
    assert page.evaluate("(key) => sessionStorage.getItem(key)", TOKEN_KEY) == demo.token
    expect(page.locator("#who-sub")).to_have_text("admin")
    expect(page.locator("#who-role")).to_be_visible()
    expect(page.locator("#owner-field")).to_be_visible()  # admins may filter by owner
    expect(page.locator("#empty-title")).to_have_text("No images yet")

    # Two real images: a PNG through the file picker, a JPEG dropped on the zone.
    sunset = gradient_png(320, 240, (251, 146, 60), (91, 33, 182))
    lake = canvas_jpeg(page, 320, 240)
    assert lake[:3] == b"\xff\xd8\xff"
    page.set_input_files(
        "#file-input", [FilePayload(name="sunset-beach.png", mimeType="image/png", buffer=sunset)]
    )
    drop_files(
        page, "#dropzone", [{"name": "mountain-lake.jpg", "mimeType": "image/jpeg", "buffer": lake}]
    )
    items = page.locator("#queue .queue-item")
    expect(items).to_have_count(2)
    # Previews before upload (object URLs), and a caption for the first.
    for index in range(2):
        preview = items.nth(index).locator(".queue-thumb img")
        expect(preview).to_have_attribute("src", re.compile(r"^blob:"))
    items.nth(0).get_by_label("Caption for sunset-beach.png").fill("Evening light")
    expect(page.locator("#start-upload")).to_have_text("Upload 2 files")
    page.locator("#start-upload").click()

    for index in range(2):
        item = items.nth(index)
        expect(item.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        expect(item.locator(".queue-status")).to_have_text("Uploaded")

    # Both in the grid, with thumbnails that load from the bucket, signed in ONE batch call.
    ui.wait_for_thumbnails(2)
    expect(page.locator("#library-count")).to_have_text("2 images shown")
    batch_calls = [r for r in ui.requests if r.url.endswith("/images/signed-urls")]
    assert len(batch_calls) == 1 and batch_calls[0].method == "POST"
    thumbnails = page.locator("#grid img")
    for index in range(2):
        assert thumbnails.nth(index).get_attribute("src").startswith(demo.s3_endpoint + "/")
    grid = page.locator("#grid")
    expect(grid.get_by_role("img", name="Evening light")).to_be_visible()  # alt = caption
    expect(grid.get_by_role("img", name="mountain-lake.jpg")).to_be_visible()  # alt = filename
    page.evaluate("() => { document.getElementById('toast').hidden = true; }")  # a clean picture
    ui.screenshot("admin-library.png")

    # The JPEG reached the bucket byte for byte (the browser computed the right Content-MD5).
    by_name = {image["filename"]: image for image in demo.all_images()}
    assert set(by_name) == {"sunset-beach.png", "mountain-lake.jpg"}
    assert by_name["mountain-lake.jpg"]["content_type"] == "image/jpeg"
    assert (by_name["mountain-lake.jpg"]["width"], by_name["mountain-lake.jpg"]["height"]) == (
        320,
        240,
    )
    assert by_name["sunset-beach.png"]["caption"] == "Evening light"

    # Search: only the match remains.
    page.get_by_label("Search").fill("sunset")
    expect(page.locator("#grid .grid-item")).to_have_count(1)
    expect(page.locator("#grid .tile-name")).to_have_text("sunset-beach.png")
    expect(page.locator("#library-count")).to_have_text("1 image shown")

    # Details: metadata, caption edit, primary, signed URL with its expiry.
    tile = page.locator("#grid .tile").first
    image_id = page.locator("#grid .grid-item").first.get_attribute("data-id")
    tile.focus()
    page.keyboard.press("Enter")  # the tiles are buttons: keyboard first
    dialog = page.locator("#details")
    expect(dialog).to_be_visible()
    expect(page.locator("#details-close")).to_be_focused()
    expect(page.locator("#details-title")).to_have_text("sunset-beach.png")
    expect(page.locator("#details-meta")).to_contain_text("320 \u00d7 240 px")
    expect(page.locator("#details-meta")).to_contain_text("admin")
    expect(page.locator("#url-output")).to_have_value(re.compile("^" + re.escape(demo.s3_endpoint)))
    expect(page.locator("#url-expiry")).to_contain_text("Expires at")
    assert page.locator("#open-full").get_attribute("href").startswith(demo.s3_endpoint)
    assert page.locator("#open-full").get_attribute("target") == "_blank"
    page.wait_for_function("() => document.getElementById('details-img').naturalWidth === 320")

    page.get_by_label("Caption", exact=True).fill("A warm sunset over the bay")
    page.get_by_role("button", name="Save caption").click()
    expect(page.locator("#caption-status")).to_have_text("Saved")
    stored = demo.api("GET", f"/images/{image_id}").json()["image"]
    assert stored["caption"] == "A warm sunset over the bay"

    page.get_by_role("button", name="Set as primary").click()
    expect(page.locator("#primary-btn")).to_be_disabled()
    expect(page.locator("#details-badges")).to_contain_text("Primary")
    assert demo.api("GET", f"/images/{image_id}").json()["image"]["is_primary"] is True
    ui.screenshot("admin-details.png", full_page=False)

    # Copy the signed URL; open the full size in a new tab (straight from the bucket).
    signed = page.locator("#url-output").input_value()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#toast")).to_have_text("Signed URL copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == signed
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open full size").click()
    full_size = opened.value
    full_size.wait_for_load_state()
    assert full_size.url == signed
    full_size.close()

    page.keyboard.press("Escape")  # closes the dialog, focus returns to the tile
    expect(dialog).to_be_hidden()
    expect(tile).to_be_focused()
    expect(tile).to_contain_text("Primary")
    expect(grid.get_by_role("img", name="A warm sunset over the bay")).to_be_visible()

    # Delete the other one, with confirmation.
    page.get_by_label("Search").fill("")
    expect(page.locator("#grid .grid-item")).to_have_count(2)
    page.locator("#grid .tile", has_text="mountain-lake.jpg").click()
    dialog.get_by_label("Kind", exact=True).select_option("cover")
    expect(page.locator("#details-badges")).to_contain_text("Cover")
    lake_id = by_name["mountain-lake.jpg"]["id"]
    assert demo.api("GET", f"/images/{lake_id}").json()["image"]["kind"] == "cover"
    page.get_by_role("button", name="Delete…").click()
    expect(page.locator("#delete-confirm")).to_contain_text("mountain-lake.jpg")
    page.get_by_role("button", name="Delete image").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#grid .grid-item")).to_have_count(1)
    expect(page.locator("#library-count")).to_have_text("1 image shown")
    expect(page.locator("#grid .tile-name")).to_have_text("sunset-beach.png")

    # The API (MongoDB) and the bucket agree: one image, one original, the same key; the
    # demo's worker may have made its variants, and nothing is left of the deleted one's.
    images = demo.all_images()
    assert [image["filename"] for image in images] == ["sunset-beach.png"]
    keys = demo.bucket_keys()
    stem = images[0]["key"].rsplit(".", 1)[0]
    assert [key for key in keys if not key.startswith("variants.v1/")] == [images[0]["key"]]
    assert all(key.startswith(f"variants.v1/{stem}/") for key in keys if key != images[0]["key"])

    # The token never left sessionStorage for a URL, and no page sent a Referer.
    for request in ui.requests:
        assert demo.token not in request.url
        assert not request.headers.get("referer"), request.url
    ui.assert_clean()


def test_a_hostile_filename_renders_as_text(ui: UI) -> None:
    page = ui.page
    ui.sign_in()
    page.set_input_files(
        "#file-input",
        [
            FilePayload(
                name=XSS_NAME,
                mimeType="image/png",
                buffer=gradient_png(64, 48, (0, 0, 0), (9, 9, 9)),
            )
        ],
    )
    expect(page.locator("#queue .queue-name")).to_have_text(XSS_NAME)
    page.locator("#start-upload").click()
    expect(page.locator("#queue .queue-status")).to_have_text("Uploaded")
    ui.wait_for_thumbnails(1)

    expect(page.locator("#grid .tile-name")).to_have_text(XSS_NAME)
    page.locator("#grid .tile").click()
    expect(page.locator("#details-title")).to_have_text(XSS_NAME)
    page.keyboard.press("Escape")

    # The name is text wherever it appears: escaped in the markup, never an element.
    assert page.locator('img[src="x"]').count() == 0
    assert page.evaluate("() => document.querySelectorAll('[onerror]').length") == 0
    markup = page.content()
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in markup
    assert "<img src=x" not in markup and '<img src="x"' not in markup
    page.wait_for_timeout(200)  # an alert would be asynchronous to the render
    assert ui.dialogs == []
    ui.assert_clean()


def test_sign_in_with_a_pasted_token_and_sign_out(
    ui: UI, demo: DemoBroker, user_token: str
) -> None:
    page = ui.page
    page.goto(demo.base_url + "/admin/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    field = page.get_by_label("Access token")

    field.fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("does not look like a JWT")

    field.fill(user_token[:-4] + "AAAA")  # well-formed, badly signed
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("refused this token")
    assert page.evaluate("(key) => sessionStorage.getItem(key)", TOKEN_KEY) is None

    field.fill(user_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#who-sub")).to_have_text("bob")
    expect(page.locator("#who-role")).to_be_hidden()
    # Contract v1.1: anyone may name an owner (and then sees that owner's public images).
    expect(page.locator("#owner-field")).to_be_visible()
    expect(page.locator("#filter-owner")).to_have_attribute("placeholder", "You")
    expect(page.locator("#empty-title")).to_have_text("No images yet")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("(key) => sessionStorage.getItem(key)", TOKEN_KEY) is None
    # A failed sign-in is an expected 401 in the console; nothing else may be.
    assert all("401" in message for message in ui.console_errors), ui.console_errors
    ui.console_errors.clear()
    ui.assert_clean()


def test_phone_width(ui: UI, demo: DemoBroker) -> None:
    for index, colours in enumerate(
        [((56, 189, 248), (30, 64, 175)), ((244, 114, 182), (124, 58, 237))]
    ):
        demo.upload(gradient_png(320, 240, *colours), f"phone-{index + 1}.png", "image/png")
    page = ui.page
    page.set_viewport_size(PHONE)
    ui.sign_in()
    ui.wait_for_thumbnails(2)

    def no_horizontal_overflow() -> None:
        sizes = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], sizes

    for selector in ("#dropzone", "#grid", "#pick-files", "#search"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["width"] > 0, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
    # Two columns of thumbnails side by side.
    first, second = (page.locator("#grid .tile").nth(i).bounding_box() for i in range(2))
    assert first and second and first["y"] == second["y"] and second["x"] > first["x"]
    no_horizontal_overflow()
    ui.screenshot("admin-library-phone.png")

    page.locator("#grid .tile").first.click()
    expect(page.locator("#details")).to_be_visible()
    no_horizontal_overflow()
    box = page.locator("#details").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    expect(page.get_by_role("button", name="Delete…")).to_be_visible()
    ui.screenshot("admin-details-phone.png", full_page=False)
    page.keyboard.press("Escape")
    ui.assert_clean()


# ---- the browser module itself (/static/broker.js), in the signed-in admin page ---------------

# Runs in the page: the module admin.js loaded (same URL, so the same instance, signed in).
_UPLOAD_OUTCOME = """async ([name, type, data, options]) => {
    const m = await import("/static/broker.js");
    const bytes = typeof data === "number"
        ? new Uint8Array(data)
        : Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const file = new File([bytes], name, { type });
    const phases = [];
    try {
        const image = await m.upload(file, {
            ...options, onProgress: (p) => phases.push(p.phase),
        });
        return { id: image.id, phases };
    } catch (error) {
        return {
            error: error.name, code: error.code, status: error.status, message: error.message,
            broker: error instanceof m.BrokerError, phases,
        };
    }
}"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_browser_module_upload_errors_and_retries(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    ui.sign_in()
    max_bytes = demo.api("GET", "/config").json()["max_upload_bytes"]
    png = gradient_png(32, 24, (0, 128, 255), (0, 0, 64))

    def attempt(name: str, type_: str, data: bytes | int, **options: object) -> dict[str, Any]:
        payload = data if isinstance(data, int) else _b64(data)
        outcome: dict[str, Any] = page.evaluate(_UPLOAD_OUTCOME, [name, type_, payload, options])
        return outcome

    def presigns() -> int:
        return sum(r.url.endswith("/images/presign-upload") for r in ui.requests)

    # Refused before anything is sent, from GET /config's limits.
    wrong_type = attempt("notes.txt", "text/plain", b"hello")
    assert (
        wrong_type["error"] == "UnsupportedTypeError" and wrong_type["code"] == "unsupported_type"
    )
    assert wrong_type["broker"] is True
    too_big = attempt("huge.png", "image/png", max_bytes + 1)
    assert too_big["error"] == "TooLargeError" and too_big["code"] == "too_large"
    assert presigns() == 0

    # The same refusals from the broker itself (415, 413) carry its error.message.
    wrong_type = attempt("notes.txt", "text/plain", b"hello", check=False)
    assert (wrong_type["error"], wrong_type["status"]) == ("UnsupportedTypeError", 415)
    assert wrong_type["message"]
    too_big = attempt("huge.png", "image/png", max_bytes + 1, check=False)
    assert (too_big["error"], too_big["status"], too_big["code"]) == (
        "TooLargeError",
        413,
        "too_large",
    )
    assert presigns() == 2

    bucket = demo.s3_endpoint + "/**"
    puts: list[str] = []

    def flaky(route: Route) -> None:  # the bucket answers 503 once, then works
        if route.request.method != "PUT":
            return route.continue_()
        puts.append(route.request.url)
        if len(puts) == 1:
            return route.fulfill(
                status=503,
                body="<Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>",
                headers={"Access-Control-Allow-Origin": "*"},
            )
        return route.continue_()

    page.route(bucket, flaky)
    retried = attempt("retried.png", "image/png", png, backoff=20)
    page.unroute(bucket)
    assert "id" in retried, retried
    assert len(puts) == 2 and puts[0] == puts[1]  # the same presigned URL, tried again
    assert retried["phases"][0] == "hashing" and retried["phases"][-2:] == ["confirming", "done"]

    puts.clear()

    def unreachable(route: Route) -> None:
        if route.request.method != "PUT":
            return route.continue_()
        puts.append(route.request.url)
        return route.abort("connectionreset")

    page.route(bucket, unreachable)
    offline = attempt("offline.png", "image/png", png, backoff=20)
    page.unroute(bucket)
    assert (offline["error"], offline["code"]) == ("NetworkError", "network_error")
    assert len(puts) == 3  # the first try and two retries

    puts.clear()

    def expired(route: Route) -> None:
        if route.request.method != "PUT":
            return route.continue_()
        puts.append(route.request.url)
        return route.fulfill(
            status=403,
            body="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    page.route(bucket, expired)
    late = attempt("late.png", "image/png", png, backoff=20)
    page.unroute(bucket)
    assert (late["error"], late["code"], late["status"]) == ("UrlExpiredError", "url_expired", 403)
    assert len(puts) == 1  # an expired URL is not retried

    # Only the retried upload exists, in MongoDB and in the bucket alike.
    images = demo.all_images()
    assert [image["id"] for image in images] == [retried["id"]]
    # (The demo's worker may have made the retried one's variants, under variants.v1/.)
    originals = [key for key in demo.bucket_keys() if not key.startswith("variants.v1/")]
    assert originals == [images[0]["key"]]

    # The browser logged the failures it saw (415, 413, 503, resets, 403); nothing else.
    unexpected = [
        message
        for message in ui.console_errors
        if not re.search(
            r"Failed to load resource: .*(415|413|503|ERR_CONNECTION_RESET|403)", message
        )
    ]
    assert unexpected == []
    ui.console_errors.clear()
    ui.assert_clean()


def test_browser_module_confirms_when_its_put_retry_finds_the_object_stored(
    ui: UI, demo: DemoBroker
) -> None:
    # The bucket stores the first PUT but its answer never reaches the browser (reset). The URL
    # writes once (If-None-Match: *), so broker.js's retry gets 412: the object is there, and
    # broker.js goes on to confirm instead of failing the upload.
    page = ui.page
    ui.sign_in()
    png = gradient_png(24, 16, (255, 128, 0), (0, 64, 0))
    answers: list[int] = []

    def answer_lost_once(route: Route) -> None:
        if route.request.method != "PUT":
            return route.continue_()
        assert route.request.headers.get("if-none-match") == "*"
        response = route.fetch()  # the bucket really gets (and judges) every attempt
        answers.append(response.status)
        if len(answers) == 1:
            return route.abort("connectionreset")
        return route.fulfill(response=response)

    bucket = demo.s3_endpoint + "/**"
    page.route(bucket, answer_lost_once)
    outcome: dict[str, Any] = page.evaluate(
        _UPLOAD_OUTCOME, ["lost-answer.png", "image/png", _b64(png), {"backoff": 20}]
    )
    page.unroute(bucket)
    assert answers == [200, 412], answers
    assert "id" in outcome, outcome
    assert outcome["phases"][-2:] == ["confirming", "done"]
    image = demo.api("GET", f"/images/{outcome['id']}").json()["image"]
    assert image["size"] == len(png) and image["content_md5"] == md5_b64(png)
    unexpected = [
        message
        for message in ui.console_errors
        if not re.search(r"Failed to load resource: .*(412|ERR_CONNECTION_RESET)", message)
    ]
    assert unexpected == []
    ui.console_errors.clear()
    ui.assert_clean()


def test_browser_module_md5_and_signed_url_cache(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    ui.sign_in()

    # MD5 in 2 MiB (and 1 MiB) slices equals Python's over the whole 5 MiB.
    size = 5 * 1024 * 1024 + 3
    digests = page.evaluate(
        """async (size) => {
            const m = await import("/static/broker.js");
            const bytes = new Uint8Array(size);
            for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 9)) & 255;
            const blob = new Blob([bytes]);
            return [await m.md5Base64(blob), await m.md5Base64(blob, { chunkSize: 1 << 20 })];
        }""",
        size,
    )
    expected = bytes((i * 31 + (i >> 9)) & 255 for i in range(size))
    assert digests == [md5_b64(expected)] * 2

    image = demo.upload(gradient_png(32, 24, (10, 10, 10), (90, 90, 90)), "cached.png", "image/png")
    ui.requests.clear()
    # 150 unknown ids and one real: two batch calls (≤100 ids each), unknown ids absent.
    result = page.evaluate(
        """async ([ids]) => {
            const m = await import("/static/broker.js");
            m.defaultClient.clearCache();
            const urls = await m.signedUrls(ids);
            return Object.keys(urls);
        }""",
        [[f"unknown-{n}" for n in range(150)] + [image["id"]]],
    )
    assert result == [image["id"]]
    batches = [r for r in ui.requests if r.url.endswith("/images/signed-urls")]
    assert len(batches) == 2
    assert sorted(len(json.loads(r.post_data or "{}")["ids"]) for r in batches) == [51, 100]

    # Cached until shortly before expiry: asking again sends nothing; invalidate() refetches.
    ui.requests.clear()
    urls = page.evaluate(
        """async (id) => {
            const m = await import("/static/broker.js");
            const first = await m.signedUrl(id);
            const again = await m.signedUrls([id, id]);
            const same = await m.signedUrl(id);
            m.invalidate(id);
            const fresh = await m.signedUrl(id);
            const download = await m.signedUrl(id, { disposition: "attachment" });
            let missing = null;
            try { await m.signedUrl("no-such-image"); } catch (e) { missing = [e.code, e.status]; }
            return { first, again: again[id], same, fresh, download, missing };
        }""",
        image["id"],
    )
    assert urls["first"] == urls["again"] == urls["same"]
    assert urls["fresh"]["url"].startswith(demo.s3_endpoint)
    assert "attachment" in urls["download"]["url"]
    assert urls["missing"] == ["not_found", 404]
    calls = [(r.method, r.url.removeprefix(demo.base_url)) for r in ui.requests]
    assert calls == [  # the first three answers came from the batch above, cached
        ("POST", "/images/signed-urls"),  # fresh, after invalidate()
        ("GET", f"/images/{image['id']}/signed-url?disposition=attachment"),
        ("POST", "/images/signed-urls"),  # the missing one
    ]
    ui.assert_clean()
