"""Large files in headless Chromium: broker.js's multipart upload (progress, pause, resume after a
reload), the admin UI on top of it, and Uppy's Dashboard through the broker (the vendored bundle).

The broker is ``make run``'s demo with room for large files (``BROKER_MAX_UPLOAD_BYTES``); pages
are the broker's own (the admin UI, and ``/admin/uppy``), so their real CSP applies. Part PUTs
are counted where they leave the browser, by their ``partNumber``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import FilePayload, Page, Request, Response, Route, expect

from tests.support.browser import UI, DemoBroker, running_demo
from tests.support.images import gradient_png, png_bytes

pytestmark = pytest.mark.browser

MiB = 1024 * 1024
PART = 8 * MiB  # broker.js's part size for these files (the broker's default)
BIG = 24_000_000  # three parts: 8 MiB, 8 MiB and the rest
LAST_MODIFIED_MS = 1_700_000_000_000  # the same file, picked again after a reload

# A file made in the page: a PNG signature and header, then bytes from a fixed generator, so the
# page can make the same file again after a reload without 24 MB crossing the wire.
_MAKE_FILE = """
([size, header, name]) => {
    const bytes = new Uint8Array(size);
    const head = Uint8Array.from(atob(header), (c) => c.charCodeAt(0));
    bytes.set(head);
    let x = 2463534242;
    for (let i = head.length; i < size; i += 1) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
        bytes[i] = x & 0xff;
    }
    return new File([bytes], name, { type: "image/png", lastModified: LAST_MODIFIED });
}
""".replace("LAST_MODIFIED", str(LAST_MODIFIED_MS))

# Uploads that file with broker.js (the instance the admin page loaded, signed in): the image,
# the progress reports, and the part count the task resumed with.
_UPLOAD = """async ([size, header, name, options]) => {
    const m = await import("/static/broker.js");
    const file = (MAKE_FILE)([size, header, name]);
    const progress = [];
    const task = m.createUpload(file, {
        ...options,
        onProgress: (p) => progress.push({ phase: p.phase, loaded: p.loaded, percent: p.percent }),
    });
    window.__task = task;
    try {
        const image = await task.promise;
        return { image, progress, resumedParts: task.resumedParts, multipart: task.multipart };
    } catch (error) {
        return { error: error.name, message: error.message, progress };
    }
}""".replace("MAKE_FILE", _MAKE_FILE.strip())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoBroker]:
    """The demo with room for large files (the ``ui`` fixture of this module uses it)."""
    with running_demo(
        tmp_path_factory.mktemp("demo"), BROKER_MAX_UPLOAD_BYTES=str(64 * MiB)
    ) as broker:
        yield broker


def png_head() -> str:
    """The PNG signature and IHDR chunk (a 4x3 image), base64, for the page's file."""
    return base64.b64encode(png_bytes()[:33]).decode()


def part_number(request: Request) -> int | None:
    """The part a bucket request sends, or None when it is not a part PUT."""
    if request.method != "PUT":
        return None
    numbers = parse_qs(urlsplit(request.url).query).get("partNumber")
    return int(numbers[0]) if numbers else None


def parts_sent(ui: UI, since: int = 0) -> list[int]:
    """The part numbers PUT to the bucket (from request ``since`` of the tab on)."""
    numbers = [part_number(r) for r in ui.requests[since:] if r.url.startswith(ui.demo.s3_endpoint)]
    return sorted(n for n in numbers if n is not None)


def stored(demo: DemoBroker, image: dict[str, Any]) -> bytes:
    """The bytes a signed GET of the image serves."""
    signed = demo.api("GET", f"/images/{image['id']}/signed-url").json()
    answer = requests.get(signed["url"], timeout=30)
    assert answer.status_code == 200
    return answer.content


def composite_etag(data: bytes, part_size: int) -> str:
    digests = [
        hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    ]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def hold_part(page: Page, demo: DemoBroker, held: int) -> list[Route]:
    """Let every bucket request through except PUTs of part ``held``, which never get an answer
    (as on a dropped connection); the held routes are returned."""
    holding: list[Route] = []

    def route(route: Route) -> None:
        if part_number(route.request) == held:
            holding.append(route)  # no answer: the request hangs until the page drops it
            return
        route.continue_()

    page.route(demo.s3_endpoint + "/**", route)
    return holding


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` while Playwright delivers the page's events (a minute at most)."""
    for _ in range(600):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never happened: {what}")


def parts_stored(page: Page, demo: DemoBroker) -> list[int]:
    """The part numbers the bucket answers 200 to, as they come (start before they are sent)."""
    answered: list[int] = []

    def on_response(response: Response) -> None:
        number = part_number(response.request)
        if response.url.startswith(demo.s3_endpoint) and number and response.status == 200:
            answered.append(number)

    page.on("response", on_response)
    return answered


def drop(held: list[Route]) -> None:
    """Answer the held requests as a dropped connection would (a no-op once the page is gone)."""
    for route in held:
        with contextlib.suppress(Exception):
            route.abort("connectionreset")


def test_broker_js_uploads_24_mb_in_parts_with_progress_to_100(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    ui.sign_in()
    outcome = page.evaluate(_UPLOAD, [BIG, png_head(), "panorama.png", {}])
    assert "image" in outcome, outcome
    image = outcome["image"]
    assert outcome["multipart"] is True
    assert (image["filename"], image["size"], image["width"], image["height"]) == (
        "panorama.png",
        BIG,
        4,
        3,
    )
    # Three parts, each sent once; no single PUT.
    assert parts_sent(ui) == [1, 2, 3]
    puts = [r for r in ui.requests if r.method == "PUT" and r.url.startswith(demo.s3_endpoint)]
    assert len(puts) == 3

    # One progress figure, never going back, through the parts to 100 %.
    progress = outcome["progress"]
    sent = [p for p in progress if p["phase"] in ("uploading", "confirming", "done")]
    loaded = [p["loaded"] for p in sent]
    assert loaded == sorted(loaded)
    assert [p["percent"] for p in sent] == sorted(p["percent"] for p in sent)
    assert any(0 < p["percent"] < 100 for p in sent)  # figures between the ends were shown
    assert progress[-1] == {"phase": "done", "loaded": BIG, "percent": 100}
    assert [p["phase"] for p in progress][-2:] == ["confirming", "done"]

    # The bytes the bucket serves are the file's, and the image's ETag is the one its signed
    # parts imply.
    data = stored(demo, image)
    md5_in_page = page.evaluate(
        """async ([size, header, name]) => {
            const m = await import("/static/broker.js");
            return m.md5Base64((MAKE_FILE)([size, header, name]));
        }""".replace("MAKE_FILE", _MAKE_FILE.strip()),
        [BIG, png_head(), "panorama.png"],
    )
    assert len(data) == BIG
    assert base64.b64encode(hashlib.md5(data).digest()).decode() == md5_in_page
    assert image["etag"] == composite_etag(data, PART)
    ui.assert_clean()


def test_after_a_reload_the_same_file_resumes_without_sending_finished_parts(
    ui: UI, demo: DemoBroker
) -> None:
    page = ui.page
    ui.sign_in()
    held = hold_part(page, demo, 3)
    stored_parts = parts_stored(page, demo)
    # Started, not awaited: the page is reloaded while it runs.
    page.evaluate(
        "(args) => { window.__pending = (UPLOAD)(args); }".replace("UPLOAD", _UPLOAD),
        [BIG, png_head(), "reload.png", {}],
    )
    wait_until(page, lambda: len(stored_parts) == 2 and len(held) == 1, "parts 1, 2 stored, 3 sent")
    assert parts_sent(ui) == [1, 2, 3]
    assert demo.all_images() == []

    # The page goes away mid-upload (part 3 still unanswered); the same file is picked again in
    # the new one.
    page.reload()
    page.unroute(demo.s3_endpoint + "/**")
    drop(held)
    page.locator("#app-view").wait_for(state="visible")
    since = len(ui.requests)
    outcome = page.evaluate(_UPLOAD, [BIG, png_head(), "reload.png", {}])
    assert "image" in outcome, outcome
    assert outcome["resumedParts"] == 2
    assert parts_sent(ui, since) == [3]  # only what the bucket did not hold
    listings = [r for r in ui.requests[since:] if r.method == "GET" and r.url.endswith("/parts")]
    creates = [r for r in ui.requests[since:] if r.url.endswith("/images/multipart")]
    assert (len(listings), len(creates)) == (1, 0)
    assert outcome["image"]["size"] == BIG
    # Progress picked up where the bucket was: it starts at the two parts already stored.
    first = next(p for p in outcome["progress"] if p["phase"] == "uploading")
    assert first["loaded"] == 2 * PART
    assert [i["id"] for i in demo.all_images()] == [outcome["image"]["id"]]
    # Nothing left for a later page to resume.
    assert page.evaluate("() => localStorage.getItem('broker.multipart.v1')") is None
    unexpected = [m for m in ui.console_errors if "ERR_" not in m and "Failed to load" not in m]
    assert unexpected == []


def big_png_file(tmp_path: Path, name: str, size: int) -> Path:
    """A PNG of ``size`` bytes on disk with a fixed modification time (a real file to pick)."""
    path = tmp_path / name
    data = png_bytes()
    path.write_bytes(data[:33] + os.urandom(size - 33))
    os.utime(path, (LAST_MODIFIED_MS / 1000, LAST_MODIFIED_MS / 1000))
    return path


def test_the_admin_ui_pauses_and_resumes_a_large_upload(
    ui: UI, demo: DemoBroker, tmp_path: Path
) -> None:
    page = ui.page
    ui.sign_in()
    path = big_png_file(tmp_path, "wide.png", 17 * MiB)  # parts of 8, 8 and 1 MiB
    held = hold_part(page, demo, 2)
    stored_parts = parts_stored(page, demo)
    page.set_input_files("#file-input", str(path))
    item = page.locator("#queue .queue-item")
    page.locator("#start-upload").click()
    wait_until(page, lambda: 1 in stored_parts and len(held) == 1, "part 1 stored, part 2 sent")
    pause = item.get_by_role("button", name="Pause the upload of wide.png")
    pause.click()
    expect(item.locator(".queue-status")).to_have_text(re.compile(r"^Paused at \d+%"))
    expect(item).to_have_attribute("data-state", "paused")
    expect(item.get_by_role("button", name="Resume the upload of wide.png")).to_be_visible()
    paused_at = int(item.get_by_role("progressbar").get_attribute("aria-valuenow") or "0")
    assert 0 < paused_at < 100

    page.unroute(demo.s3_endpoint + "/**")
    item.get_by_role("button", name="Resume the upload of wide.png").click()
    expect(item.locator(".queue-status")).to_have_text("Uploaded", timeout=60_000)
    expect(item.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    # Part 1 went once; part 2 was cut short by the pause and sent again.
    sent = parts_sent(ui)
    assert sent.count(1) == 1 and sent.count(3) == 1 and sent.count(2) >= 1
    (image,) = demo.all_images()
    assert (image["filename"], image["size"]) == ("wide.png", 17 * MiB)
    assert stored(demo, image) == path.read_bytes()


def test_the_admin_ui_resumes_a_paused_upload_after_a_reload(
    ui: UI, demo: DemoBroker, tmp_path: Path
) -> None:
    page = ui.page
    ui.sign_in()
    path = big_png_file(tmp_path, "night.png", 17 * MiB)
    held = hold_part(page, demo, 2)
    stored_parts = parts_stored(page, demo)
    page.set_input_files("#file-input", str(path))
    page.locator("#start-upload").click()
    wait_until(page, lambda: 1 in stored_parts and len(held) == 1, "part 1 stored, part 2 sent")
    item = page.locator("#queue .queue-item")
    item.get_by_role("button", name="Pause the upload of night.png").click()
    expect(item).to_have_attribute("data-state", "paused")
    before_reload = set(stored_parts)  # 1, and 3 too if it was quick (parts go 3 at a time)

    page.reload()
    page.unroute(demo.s3_endpoint + "/**")
    drop(held)
    page.locator("#app-view").wait_for(state="visible")
    since = len(ui.requests)
    page.set_input_files("#file-input", str(path))
    page.locator("#start-upload").click()
    item = page.locator("#queue .queue-item")
    expect(item.locator(".queue-status")).to_have_text("Uploaded", timeout=60_000)
    resent = parts_sent(ui, since)
    assert resent == sorted({1, 2, 3} - before_reload) and 2 in resent and 1 not in resent
    (image,) = demo.all_images()
    assert image["size"] == 17 * MiB and stored(demo, image) == path.read_bytes()


def test_uppy_dashboard_uploads_a_small_and_a_multipart_file_through_the_broker(
    ui: UI, demo: DemoBroker
) -> None:
    page = ui.page
    response = page.goto(f"{demo.base_url}/admin/uppy#token={demo.token}")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert re.search(r"connect-src 'self' \S+ data:", csp)
    page.locator("body[data-ready=true]").wait_for(state="attached")

    small = gradient_png(96, 64, (30, 64, 175), (191, 219, 254))
    big = png_bytes()[:33] + os.urandom(17 * MiB - 33)
    page.locator(".uppy-Dashboard-input").first.set_input_files(
        files=[
            FilePayload(name="lake.png", mimeType="image/png", buffer=small),
            FilePayload(name="coast.png", mimeType="image/png", buffer=big),
        ]
    )
    page.locator(".uppy-StatusBar-actionBtn--upload").click()
    expect(page.locator("#recorded li")).to_have_count(2, timeout=60_000)
    expect(page.locator(".uppy-StatusBar.is-complete")).to_be_visible()

    images = {image["filename"]: image for image in demo.all_images()}
    assert {name: image["size"] for name, image in images.items()} == {
        "lake.png": len(small),
        "coast.png": len(big),
    }
    assert stored(demo, images["coast.png"]) == big
    assert images["coast.png"]["etag"] == composite_etag(big, PART)

    # The small file in one PUT with its MD5; the large one in three parts, each PUT carrying
    # the MD5 of exactly its range (hashed in the page before the broker signed it).
    bucket_puts = [
        r for r in ui.requests if r.method == "PUT" and r.url.startswith(demo.s3_endpoint)
    ]
    singles = [r for r in bucket_puts if part_number(r) is None]
    assert [r.all_headers()["content-md5"] for r in singles] == [
        base64.b64encode(hashlib.md5(small).digest()).decode()
    ]
    parts = {part_number(r): r.all_headers()["content-md5"] for r in bucket_puts if part_number(r)}
    assert parts == {
        n: base64.b64encode(hashlib.md5(big[(n - 1) * PART : n * PART]).digest()).decode()
        for n in (1, 2, 3)
    }
    # Each image recorded once: a presign and a confirm, a create and a complete.
    calls = [
        (r.method, urlsplit(r.url).path) for r in ui.requests if r.url.startswith(demo.base_url)
    ]
    assert calls.count(("POST", "/images/presign-upload")) == 1
    assert calls.count(("POST", "/images")) == 1
    assert calls.count(("POST", "/images/multipart")) == 1
    assert sum(1 for m, p in calls if m == "POST" and p.endswith("/complete")) == 1
    ui.assert_clean()
