"""The console with the keyboard alone: sign in, move through the sections, select
companies and open, then close, the copy panel — no mouse."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.support.keys import WRITE_KEY
from tests.support.whole_stack import WholeStack


def _tab_to(page: Page, name: str, *, back: bool = False, at_most: int = 60) -> None:
    """Press Tab (Shift+Tab with `back`) until the focused element's accessible text is
    `name`."""
    for _ in range(at_most):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.getAttribute('aria-label') || e.textContent || '').trim(); }"
        )
        if focused == name:
            return
    raise AssertionError(f"Tab never reached {name!r}")


def test_sign_in_select_and_open_the_copy_panel_by_keyboard(page: Page, stack: WholeStack) -> None:
    page.goto(f"{stack.url}/console/lists")
    expect(page.get_by_label("API key")).to_be_focused()  # autofocus: type at once
    page.keyboard.type(WRITE_KEY)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r".*/console/lists"))

    _tab_to(page, "Jobs")  # the sections are links in the tab order
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r".*/console/jobs"))
    page.go_back()
    expect(page).to_have_url(re.compile(r".*/console/lists"))

    _tab_to(page, "Select Initech 2")
    page.keyboard.press("Space")
    expect(page.locator("#selection-count")).to_have_text("1 selected")
    _tab_to(page, "Copy to…", back=True)  # the actions are above the grid
    page.keyboard.press("Enter")
    expect(page.locator("#action-panel")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#action-panel")).to_be_hidden()
    # the focused control is marked (a visible outline), not left to guess
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
