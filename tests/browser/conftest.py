"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright
through its executable path: no test tool downloads a browser; `make test` installs
chromium when it is missing).

One stack for all browser tests (tests/support/whole_stack.py: the four services on a
fresh schema and stream prefix, 1,000 companies, "My List" of 500); tests make their
own lists and batches so that they do not meet. Every test's page is photographed at
its end into tests/artifacts/browser/<test>.png (not committed); `shot(page, name)`
takes a named picture into tests/artifacts/console/ (the README's images come from
there).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from contracts.runtime.settings import Settings
from tests.support.keys import API_KEYS, READ_KEY, WRITE, WRITE_KEY
from tests.support.services import ServiceUrls
from tests.support.whole_stack import WholeStack, whole_stack

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# What this machine's Chromium needs headless as root, and nothing it would fetch.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A page action (click, fill) and an assertion (`expect`, 5 s by default) both wait up
# to this long: on a 2-core CI machine that also runs the four services, 5 s is short.
ACTIONS_WITHIN_MS = 15_000
expect.set_options(timeout=ACTIONS_WITHIN_MS)


def chromium_path() -> str:
    found = os.environ.get("CONVEYOR_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("chromium is not installed: `make browser` (or `make test`) installs it")
    return found


@pytest.fixture(scope="package")
def stack(urls: ServiceUrls) -> Iterator[WholeStack]:
    settings = Settings(
        redis_url=urls.redis_url, database_url=urls.database_url,
        claim_idle_ms=1_000, max_deliveries=3, shutdown_grace_s=5.0, poll_ms=100,
        db_pool_max=10, api_keys=API_KEYS, rate_limit_per_s=1_000.0, rate_limit_burst=2_000,
    )  # fmt: skip
    with whole_stack(settings) as running:
        yield running


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    ctx.set_default_timeout(ACTIONS_WITHIN_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A tab; photographed at the test's end, whatever the outcome."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = ARTIFACTS / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    # the tab may be gone; the test's own outcome is what counts
    with contextlib.suppress(Exception):
        tab.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert not errors, f"scripts on the page failed: {errors}"


def shot(page: Page, name: str) -> Path:
    """A named picture of the page (tests/artifacts/console/<name>.png)."""
    folder = ARTIFACTS / "console"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def sign_in(page: Page, stack: WholeStack, key: str = WRITE_KEY, then: str = "/console") -> None:
    """Sign in through the sign-in page, as a person would."""
    page.goto(f"{stack.url}{then}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/(?!sign-in).*"))


@pytest.fixture
def writer(page: Page, stack: WholeStack) -> Page:
    sign_in(page, stack, WRITE_KEY)
    return page


@pytest.fixture
def reader(page: Page, stack: WholeStack) -> Page:
    sign_in(page, stack, READ_KEY)
    return page


@pytest.fixture
def api(stack: WholeStack) -> Iterator[httpx.Client]:
    """The JSON API with the write key, to set up what a test needs."""
    with httpx.Client(base_url=stack.url, headers=WRITE, timeout=30) as client:
        yield client


def wait_until(check: Callable[[], Any], *, within_s: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        time.sleep(0.1)


def new_list(api: httpx.Client, stem: str = "list") -> dict[str, Any]:
    response = api.post("/collections", json={"name": f"{stem} {uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    return dict(response.json())


def my_list(api: httpx.Client) -> dict[str, Any]:
    page = api.get("/collections", params={"limit": 200}).json()
    return next(c for c in page["items"] if c["name"] == "My List")


def fill_list(api: httpx.Client, target: dict[str, Any], ids: list[int]) -> None:
    """Copy companies `ids` from My List into `target` and wait until it is done."""
    job = api.post("/moves", json={"source": my_list(api)["id"], "target": target["id"],
                                   "mode": "copy", "selection": ids}).json()  # fmt: skip
    wait_until(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "completed",
               what=f"job {job['id']} completes")  # fmt: skip
