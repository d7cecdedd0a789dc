"""Variants in the browser: the admin grid shows ``thumb``, the details dialog ``medium`` with a
link to the original, a pending variant shows the original meanwhile (and the tile switches
once the demo's worker has made it), and broker.js signs variants and builds ``srcset``s."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from tests.support.browser import UI, DemoBroker
from tests.support.images import gradient_png

pytestmark = pytest.mark.browser


def wait_until_ready(demo: DemoBroker, image_id: str) -> dict[str, Any]:
    """The image once the demo's worker has made every variant (bounded, not timed)."""
    deadline = time.monotonic() + 120
    while True:
        image: dict[str, Any] = demo.api("GET", f"/images/{image_id}").json()["image"]
        states = {variant["state"] for variant in image["variants"].values()}
        if states == {"ready"}:
            return image
        assert "failed" not in states and time.monotonic() < deadline, image
        time.sleep(0.2)


def test_the_grid_shows_thumb_and_the_details_medium_with_the_original_linked(
    ui: UI, demo: DemoBroker
) -> None:
    page = ui.page
    uploaded = demo.upload(
        gradient_png(1600, 1200, (0, 60, 120), (200, 120, 40)), "big.png", "image/png"
    )
    image = wait_until_ready(demo, uploaded["id"])
    ui.sign_in()
    ui.wait_for_thumbnails(1)
    tile = page.locator("#grid img").first
    assert "/variants.v1/" in tile.get_attribute("src") and "/thumb." in tile.get_attribute("src")
    page.wait_for_function("() => document.querySelector('#grid img').naturalWidth === 320")

    page.locator("#grid .tile").first.click()
    expect(page.locator("#details")).to_be_visible()
    page.wait_for_function("() => document.getElementById('details-img').naturalWidth === 1280")
    assert "/medium." in page.locator("#details-img").get_attribute("src")
    # What is copied and opened is the original, full size.
    original = page.locator("#url-output").input_value()
    assert image["key"] in original and "/variants.v1/" not in original
    assert page.locator("#open-full").get_attribute("href") == original
    ui.assert_clean()


def test_broker_js_signs_variants_and_builds_a_srcset(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    uploaded = demo.upload(gradient_png(1600, 1200, (9, 9, 9), (99, 99, 99)), "s.png", "image/png")
    image = wait_until_ready(demo, uploaded["id"])
    ui.sign_in()
    result = page.evaluate(
        """async (image) => {
            const m = await import("/static/broker.js");
            const thumb = await m.signedUrl(image.id, { variant: "thumb" });
            const original = await m.signedUrl(image.id);
            const srcset = await m.srcset(image, { variants: ["thumb", "medium"] });
            const withOriginal = await m.srcset(image, { original: true });
            let unknown = null;
            try { await m.signedUrl(image.id, { variant: "huge" }); }
            catch (e) { unknown = [e.status, e.code, Object.keys(e.details || {})]; }
            return { thumb, original, srcset, withOriginal, unknown };
        }""",
        image,
    )
    assert result["thumb"]["variant"] == "thumb" and "/thumb." in result["thumb"]["url"]
    assert result["original"]["variant"] == "original"
    entries = [entry.rsplit(" ", 1) for entry in result["srcset"].split(", ")]
    assert [width for _, width in entries] == ["320w", "1280w"]
    assert entries[0][0] == result["thumb"]["url"]
    assert "/medium." in entries[1][0]
    assert result["withOriginal"].endswith(f"{result['original']['url']} 1600w")
    assert result["unknown"] == [400, "validation_error", ["variant"]]
    # That 400 was asked for: the only console error the page may show.
    assert [m for m in ui.console_errors if "400" not in m] == []
    ui.console_errors.clear()
    # The srcset works in an <img>: the browser picks a candidate and it loads.
    page.evaluate(
        """(srcset) => {
            const img = document.createElement("img");
            img.id = "probe"; img.sizes = "320px"; img.srcset = srcset;
            document.body.append(img);
        }""",
        result["srcset"],
    )
    page.wait_for_function("() => document.getElementById('probe').naturalWidth > 0")
    ui.assert_clean()


def test_a_pending_variant_shows_the_original_and_is_asked_again(ui: UI) -> None:
    # A stub broker answers the way the real one does while the worker has not been yet.
    ui.sign_in()
    result = ui.page.evaluate(
        """async () => {
            const m = await import("/static/broker.js");
            const calls = [];
            const answer = (variant) => ({
                urls: { a1: { url: `https://bucket.example/${variant}`, expires_at:
                    new Date(Date.now() + 3600_000).toISOString(), variant } },
            });
            let ready = false;
            const fetch = async (url, options) => {
                const body = JSON.parse(options.body);
                calls.push(body);
                const variant = ready && body.variant ? body.variant : "original";
                return new Response(JSON.stringify(answer(variant)), { status: 200 });
            };
            const client = new m.BrokerClient(
                { token: "t", baseUrl: "https://broker.example", fetch });
            const image = { id: "a1", width: 1600,
                variants: { thumb: { state: "pending" }, medium: { state: "pending" } } };
            const pending = await client.signedUrl("a1", { variant: "thumb" });
            const srcset = await client.srcset(image);
            // The original stood in: cached only briefly, so a later call can find the thumb.
            const entry = client._urls.get("thumb|a1");
            const refreshIn = entry.refreshAt - Date.now();
            ready = true;
            const meanwhile = await client.signedUrl("a1", { variant: "thumb" }); // cached
            entry.refreshAt = Date.now() - 1; // ... until the recheck is due
            const later = await client.signedUrl("a1", { variant: "thumb" });
            return { pending, srcset, refreshIn, calls, meanwhile, later };
        }"""
    )
    assert result["pending"]["variant"] == "original"
    assert result["srcset"] == "https://bucket.example/original 1600w"
    assert 0 < result["refreshIn"] <= 5_000
    assert result["calls"][0] == {"ids": ["a1"], "variant": "thumb"}
    assert result["meanwhile"]["variant"] == "original"
    assert result["later"]["variant"] == "thumb"
    # thumb asked, originals for the srcset, thumb again once due: never a call per use.
    assert result["calls"] == [
        {"ids": ["a1"], "variant": "thumb"},
        {"ids": ["a1"]},
        {"ids": ["a1"], "variant": "thumb"},
    ]
    ui.assert_clean()


def test_a_tile_shows_the_original_until_its_thumbnail_is_made(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    uploaded = demo.upload(
        gradient_png(1200, 900, (0, 0, 0), (250, 250, 250)), "l.png", "image/png"
    )
    wait_until_ready(demo, uploaded["id"])
    # The grid sees the library as it was before the worker got to it (the demo's worker is
    # quicker than any page): the list says `thumb` is pending and the first batch, asked for
    # `thumb`, is answered as the broker answers then, with the original.
    asked: list[dict[str, Any]] = []

    def list_as_pending(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for image in body["images"]:
            image["variants"]["thumb"] = {"state": "pending"}
        route.fulfill(response=response, json=body)

    def first_batch_before_the_worker(route: Route) -> None:
        body = route.request.post_data_json
        asked.append(body)
        if len(asked) == 1:
            body = {name: value for name, value in body.items() if name != "variant"}
        route.continue_(post_data=json.dumps(body))

    page.route(re.compile(r"/images\?"), list_as_pending)
    page.route(re.compile(r"/images/signed-urls$"), first_batch_before_the_worker)
    ui.sign_in()
    ui.wait_for_thumbnails(1)
    first = page.locator("#grid img").first.get_attribute("src") or ""
    assert uploaded["key"] in first and "/variants.v1/" not in first
    # The grid asks again (one batch call for its waiting tiles) and swaps the picture.
    page.wait_for_function(
        "() => (document.querySelector('#grid img').getAttribute('src') || '').includes('/thumb.')",
        timeout=60_000,
    )
    page.wait_for_function("() => document.querySelector('#grid img').naturalWidth === 320")
    assert asked == [{"ids": [uploaded["id"]], "variant": "thumb"}] * 2
    ui.assert_clean()
