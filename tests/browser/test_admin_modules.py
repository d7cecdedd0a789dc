"""The admin UI's ES modules as the browser loads them: all named up front, each fetched once."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.browser import UI

pytestmark = pytest.mark.browser


def test_every_module_is_preloaded_and_fetched_once(ui: UI) -> None:
    page = ui.page
    ui.sign_in()
    entry: str = page.eval_on_selector('script[type="module"]', "(script) => script.src")
    preloaded: list[str] = page.eval_on_selector_all(
        'link[rel="modulepreload"]', "(links) => links.map((link) => link.href)"
    )
    fetched = Counter(r.url for r in ui.requests if r.url.endswith(".js"))

    # No module is missing from the list (it would be found one import level later), and the
    # list names nothing the page does not use.
    assert set(fetched) == {entry, *preloaded}
    # A preload the import does not reuse (another URL, another mode) would fetch it twice.
    assert [url for url, count in fetched.items() if count > 1] == []
    assert all(r.resource_type == "script" for r in ui.requests if r.url.endswith(".js"))
    ui.assert_clean()
