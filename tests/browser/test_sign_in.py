"""Signing in to the console, and what a key may see and do there."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot, sign_in
from tests.support.keys import READ_KEY
from tests.support.whole_stack import WholeStack


def test_a_page_asks_to_sign_in_and_comes_back(page: Page, stack: WholeStack) -> None:
    page.goto(f"{stack.url}/console/jobs?status=failed")
    expect(page).to_have_url(
        f"{stack.url}/console/sign-in?next=%2Fconsole%2Fjobs%3Fstatus%3Dfailed"
    )
    shot(page, "sign-in")
    page.get_by_label("API key").fill("not-a-key-at-all-0123456789")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("that API key is not valid")
    sign_in(page, stack, then="/console/jobs?status=failed")
    expect(page).to_have_url(f"{stack.url}/console/jobs?status=failed")
    # the key is nowhere the page's scripts or the URL could show it
    assert READ_KEY not in page.url
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "conveyor_session")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    assert (
        page.evaluate("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)").find(
            "secret"
        )
        == -1
    )


def test_sign_out_ends_the_session(page: Page, stack: WholeStack) -> None:
    sign_in(page, stack)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{stack.url}/console/sign-in")
    page.goto(f"{stack.url}/console/lists")
    expect(page).to_have_url(f"{stack.url}/console/sign-in?next=%2Fconsole%2Flists")


def test_the_api_docs_open_without_a_key(page: Page, stack: WholeStack) -> None:
    schema = httpx.get(f"{stack.url}/schema/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert httpx.get(f"{stack.url}/jobs").status_code == 401  # operations still need a key
    page.goto(f"{stack.url}/schema/swagger")
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    shot(page, "swagger")
