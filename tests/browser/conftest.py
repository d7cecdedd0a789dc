"""Browser fixtures: the broker as ``make run`` starts it, and headless Chromium driving it.

``demo`` (session) runs ``python -m broker.demo`` on a free port with its own state directory,
reads the admin URL, the token and the S3 endpoint from what it prints, and stops it with
Ctrl-C (SIGINT, as a person would) at the end. ``context`` (session) is Debian's Chromium
(``tests/browser/install-chromium.sh`` installs it) launched by Playwright with a fresh profile;
Playwright never downloads a browser of its own here. ``ui`` (per test) is a new tab whose
console errors, page errors, CSP violations, dialogs and requests are recorded, on an empty
library.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, sync_playwright

from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CSP_PROBE,
    LAPTOP,
    UI,
    DemoBroker,
    running_demo,
)
from tests.support.tokens import JWT_SECRET, make_token


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoBroker]:
    """``make run``'s broker (embedded MongoDB and S3) on a free port, for the whole session."""
    with running_demo(tmp_path_factory.mktemp("demo")) as broker:
        yield broker


@pytest.fixture(scope="session")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless Chromium (the Debian package) with a fresh profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/browser/install-chromium.sh (as root)")
    with sync_playwright() as playwright:
        browser_context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=LAPTOP,
            locale="en-US",
            timezone_id="UTC",
        )
        browser_context.set_default_timeout(15_000)
        try:
            yield browser_context
        finally:
            browser_context.close()


@pytest.fixture
def ui(demo: DemoBroker, context: BrowserContext) -> Iterator[UI]:
    """A new tab (laptop-sized) on an empty library, recording what goes wrong."""
    demo.delete_everything()
    page = context.new_page()
    page.set_viewport_size(LAPTOP)
    recorder = UI(page=page, demo=demo)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            recorder.console_errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        recorder.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: recorder.page_errors.append(str(error)))
    page.on("dialog", on_dialog)
    page.on("request", lambda request: recorder.requests.append(request))
    page.add_init_script(script=CSP_PROBE)
    try:
        yield recorder
    finally:
        page.close()
        demo.delete_everything()


@pytest.fixture
def user_token() -> str:
    """A non-admin user's token, signed with the demo's secret."""
    return make_token("bob", roles=[], secret=JWT_SECRET)
