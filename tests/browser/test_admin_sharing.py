"""Sharing in the admin UI, in Chromium against ``make run``'s broker: the visibility choice at
upload and in the details, the public link and its copy button, the "Public" badge, another
user's public gallery, and a reader's view that offers no change at all.

What the page shows is checked against what the API answers, and the public link it hands out
against what the link itself answers.
"""

from __future__ import annotations

import base64
import re

import pytest
import requests
from playwright.sync_api import FilePayload, expect

from tests.support.browser import UI, DemoBroker
from tests.support.images import gradient_png
from tests.support.tokens import JWT_SECRET, make_token

pytestmark = pytest.mark.browser


def sign_in_as(ui: UI, token: str) -> None:
    """Open the admin UI with ``token`` in the fragment, as the printed link does."""
    ui.page.goto(f"{ui.demo.base_url}/admin/#token={token}")
    ui.page.locator("#app-view").wait_for(state="visible")
    ui.page.locator("#library[aria-busy]").wait_for(state="detached")


def link_answer(url: str) -> int:
    """What a stranger following ``url`` (no token) gets first."""
    return requests.get(url, allow_redirects=False, timeout=10).status_code


def test_an_owner_shares_an_image_and_takes_it_back(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    ui.sign_in()
    expect(page.locator("#upload-visibility")).to_have_value("private")  # the default
    expect(page.locator("#upload-visibility-hint")).to_contain_text("Private")

    # Uploaded public from the panel: the grid badges it, the API agrees.
    page.locator("#upload-visibility").select_option("public")
    expect(page.locator("#upload-visibility-hint")).to_contain_text("anyone with its link")
    page.set_input_files(
        "#file-input",
        [
            FilePayload(
                name="shared.png",
                mimeType="image/png",
                buffer=gradient_png(64, 48, (56, 189, 248), (30, 64, 175)),
            )
        ],
    )
    page.locator("#start-upload").click()
    expect(page.locator("#queue .queue-status")).to_have_text("Uploaded")
    ui.wait_for_thumbnails(1)
    tile = page.locator("#grid .tile", has_text="shared.png")
    expect(tile.locator(".badge-public")).to_have_text("Public")
    [stored] = demo.all_images()
    assert stored["visibility"] == "public" and stored["public_url"]
    first_link = stored["public_url"]

    # The details: the visibility, the link, and a button that copies exactly it.
    tile.click()
    dialog = page.locator("#details")
    expect(dialog).to_be_visible()
    expect(page.locator("#details-readonly")).to_be_hidden()
    expect(dialog.get_by_label("Visibility", exact=True)).to_have_value("public")
    expect(page.locator("#public-url-output")).to_have_value(first_link)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy public link").click()
    expect(page.locator("#toast")).to_have_text("Public link copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == first_link
    assert link_answer(first_link) == 302
    ui.screenshot("admin-details-public.png", full_page=False)

    # Private: the link field and the badge go, and the link dies (this process forgets at once).
    dialog.get_by_label("Visibility", exact=True).select_option("private")
    expect(page.locator("#public-link-field")).to_be_hidden()
    expect(page.locator("#details-badges .badge-public")).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("no longer works")
    assert demo.api("GET", f"/images/{stored['id']}").json()["image"]["public_url"] is None
    assert link_answer(first_link) == 404

    # Public again: a new link, shown and working; the old one stays dead.
    dialog.get_by_label("Visibility", exact=True).select_option("public")
    expect(page.locator("#public-link-field")).to_be_visible()
    again = demo.api("GET", f"/images/{stored['id']}").json()["image"]["public_url"]
    assert again and again != first_link
    expect(page.locator("#public-url-output")).to_have_value(again)
    assert link_answer(again) == 302 and link_answer(first_link) == 404
    page.keyboard.press("Escape")
    expect(tile.locator(".badge-public")).to_have_text("Public")  # the grid heard of it
    ui.assert_clean()


def test_another_users_public_gallery_is_view_only(ui: UI, demo: DemoBroker) -> None:
    # The demo's admin owns three images; two of them public.
    for name, visibility in (("a.png", "public"), ("b.png", "private"), ("c.png", "public")):
        demo.upload(
            gradient_png(40, 30, (244, 114, 182), (124, 58, 237)),
            name,
            "image/png",
            visibility=visibility,
        )
    page = ui.page
    sign_in_as(ui, make_token("bob", roles=[], secret=JWT_SECRET))
    expect(page.locator("#empty-title")).to_have_text("No images yet")  # bob's own: none
    expect(page.locator("#upload-panel")).to_be_visible()  # bob may upload his own

    page.get_by_label("Owner").fill("admin")
    expect(page.locator("#grid .grid-item")).to_have_count(2)
    expect(page.locator("#owner-hint")).to_contain_text("admin\u2019s public gallery")
    names = page.locator("#grid .tile-name").all_text_contents()
    assert sorted(names) == ["a.png", "c.png"]
    expect(page.locator("#grid .badge-public")).to_have_count(2)
    ui.wait_for_thumbnails(2)  # signed for bob: the images are public

    page.locator("#grid .tile").first.click()
    expect(page.locator("#details-readonly")).to_contain_text("admin\u2019s")
    for control in ("#caption-input", "#kind-input", "#visibility-input", "#delete-btn"):
        expect(page.locator(control)).to_be_disabled()
    expect(page.locator("#primary-btn")).to_be_disabled()
    ui.screenshot("admin-gallery-details.png", full_page=False)
    expect(page.locator("#public-url-output")).to_have_value(re.compile(r"/p/[A-Za-z0-9_-]{43}$"))
    page.keyboard.press("Escape")

    page.get_by_label("Owner").fill("nobody-here")
    expect(page.locator("#empty-title")).to_have_text("No public images")
    ui.assert_clean()


def test_a_reader_sees_everything_and_is_offered_no_change(ui: UI, demo: DemoBroker) -> None:
    demo.upload(gradient_png(40, 30, (10, 120, 80), (200, 220, 40)), "private.png", "image/png")
    page = ui.page
    sign_in_as(ui, make_token("app-backend", roles=["reader"], secret=JWT_SECRET))
    expect(page.locator("#who-role")).to_have_text("reader")
    expect(page.locator("#upload-panel")).to_be_hidden()
    ui.wait_for_thumbnails(1)  # someone else's private image: a reader signs every image
    expect(page.locator("#grid .tile")).to_contain_text("admin")  # whose it is

    page.locator("#grid .tile").first.click()
    expect(page.locator("#details-readonly")).to_be_visible()
    for control in ("#caption-input", "#caption-save", "#kind-input", "#visibility-input"):
        expect(page.locator(control)).to_be_disabled()
    expect(page.locator("#delete-btn")).to_be_disabled()
    page.wait_for_function("() => document.getElementById('details-img').naturalWidth === 40")
    ui.assert_clean()


def test_the_browser_module_uploads_public_and_hands_out_the_link(ui: UI, demo: DemoBroker) -> None:
    page = ui.page
    ui.sign_in()
    links = page.evaluate(
        """async (data) => {
            const m = await import("/static/broker.js");
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const file = new File([bytes], "avatar.png", { type: "image/png" });
            const shared = await m.upload(file, { kind: "profile", visibility: "public" });
            const kept = await m.upload(file, { visibility: "private" });
            return {
                id: shared.id,
                plain: m.publicUrl(shared),
                thumb: m.publicUrl(shared, { variant: "thumb" }),
                none: m.publicUrl(shared, { variant: "" }),
                private: m.publicUrl(kept),
                missing: m.publicUrl(null),
            };
        }""",
        _b64(gradient_png(24, 24, (20, 20, 20), (240, 240, 240))),
    )
    stored = demo.api("GET", f"/images/{links['id']}").json()["image"]
    assert stored["visibility"] == "public" and stored["kind"] == "profile"
    assert links["plain"] == links["none"] == stored["public_url"]
    assert links["thumb"] == stored["public_url"] + "?variant=thumb"
    assert links["private"] is None and links["missing"] is None
    assert link_answer(links["plain"]) == 302
    ui.assert_clean()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
