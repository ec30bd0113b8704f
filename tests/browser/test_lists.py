"""The Lists page: a list's companies in a grid, selected and copied, moved or removed
as jobs followed in the drawer; lists created, renamed and deleted; the URL carries
the list, the search and the page."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from contracts.runtime.db import connect
from gateway.catalog import demo
from tests.browser.conftest import (
    PHONE,
    fill_list,
    my_list,
    new_list,
    shot,
    sign_in,
    wait_until,
)
from tests.support.whole_stack import WholeStack


def open_list(page: Page, stack: WholeStack, listed: dict[str, Any], query: str = "") -> None:
    page.goto(f"{stack.url}/console/lists?list={listed['id']}{query}")
    expect(page.locator("#list-title")).to_contain_text(listed["name"])


def pick(page: Page, company_id: int) -> None:
    page.locator(f"#pick-{company_id}").check()


def next_page(page: Page) -> None:
    page.locator(".pager a[rel=next]").click()


def drawer_job(page: Page, label: str) -> Locator:
    return page.locator("#drawer-jobs li", has_text=label)


def column_count(page: Page, listed: dict[str, Any]) -> Locator:
    return page.locator(f'#lists-column a[data-list-id="{listed["id"]}"] .count')


def members(api: httpx.Client, listed: dict[str, Any]) -> list[int]:
    found = api.get(f"/collections/{listed['id']}/companies", params={"limit": 500}).json()
    return [c["id"] for c in found["items"]]


@contextlib.contextmanager
def slow_database(stack: WholeStack, delay_ms: int) -> Iterator[None]:
    """`conveyor slowdb on` for the stack's schema while the block runs; off after it."""

    def switch(on: bool) -> None:
        async def run() -> None:
            conn = await connect(stack.settings)
            try:
                await demo.slow_db(conn, on=on, delay_ms=delay_ms)
            finally:
                await conn.close()

        # its own thread: Playwright's sync API holds this thread's event loop
        errors: list[BaseException] = []
        thread = threading.Thread(target=lambda: _catch(errors, lambda: asyncio.run(run())))
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    switch(True)
    try:
        yield
    finally:
        switch(False)


def _catch(errors: list[BaseException], fn: Any) -> None:
    try:
        fn()
    except BaseException as exc:  # handed to the test's thread
        errors.append(exc)


def test_three_companies_copied_to_a_new_list(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    source = new_list(api, "source")
    fill_list(api, source, list(range(11, 21)))
    open_list(writer, stack, source)
    for company in (12, 15, 19):
        pick(writer, company)
    expect(writer.locator("#selection-count")).to_have_text("3 selected")
    writer.get_by_role("button", name="Copy to…").click()
    writer.get_by_label("To list").select_option("new")
    name = f"picked {uuid.uuid4().hex[:6]}"
    writer.get_by_label("Name of the new list").fill(name)
    writer.locator("#action-go").click()

    job = drawer_job(writer, f"Copy 3 to {name}")
    expect(job.locator(".status")).to_have_text("completed")
    expect(job.locator(".counts")).to_contain_text("3 added")
    assert job.locator("progress").evaluate("p => p.value === p.max")
    expect(writer.locator("#selection-count")).to_have_text("0 selected")
    # the new list is in the column, with its count, without a reload
    target = writer.locator("#lists-column a", has_text=name)
    expect(target.locator(".count")).to_have_text("3")
    target.click()
    expect(writer.locator("#list-title")).to_contain_text(name)
    expect(writer.locator("#list-count")).to_have_text("3 companies")
    ids = writer.locator("#grid tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert ids == ["12", "15", "19"]

    # the page as people see it: a long list, some rows picked, the drawer with the job
    open_list(writer, stack, my_list(api))
    for company in (2, 3, 5):
        pick(writer, company)
    expect(writer.locator("#selection-count")).to_have_text("3 selected")
    expect(drawer_job(writer, f"Copy 3 to {name}")).to_be_visible()
    shot(writer, "lists")


def test_all_but_two_moved_sends_all_except(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    source, target = new_list(api, "twenty"), new_list(api, "into")
    fill_list(api, source, list(range(101, 121)))
    fill_list(api, target, [300])
    open_list(writer, stack, source)
    writer.get_by_role("button", name="Select all 20 in this list").click()
    expect(writer.locator("#selection-count")).to_have_text("All 20 selected")
    writer.get_by_label("Select Acme 108").uncheck()  # WORDS[108 % 9]
    pick_off = writer.locator("#pick-115")
    pick_off.uncheck()
    expect(writer.locator("#selection-count")).to_have_text("All 20 but 2 selected (18)")
    expect(writer.locator("#select-page")).to_have_js_property("indeterminate", True)

    writer.get_by_role("button", name="Move to…").click()
    writer.get_by_label("To list").select_option(target["id"])
    with writer.expect_request(lambda r: r.url.endswith("/moves") and r.method == "POST") as sent:
        writer.get_by_role("button", name="Move", exact=True).click()
    body = sent.value.post_data_json
    assert body["source"] == source["id"]
    assert body["target"] == target["id"]
    assert body["mode"] == "move"
    assert body["selection"]["all"] is True
    assert sorted(body["selection"]["exclude"]) == [108, 115]

    job = drawer_job(writer, f"Move 18 to {target['name']}")
    expect(job.locator(".status")).to_have_text("completed")
    expect(job.locator(".counts")).to_contain_text("18 added")
    expect(column_count(writer, source)).to_have_text("2")
    expect(column_count(writer, target)).to_have_text("19")
    expect(writer.locator("#list-count")).to_have_text("2 companies")
    expect(writer.locator("#grid tbody tr")).to_have_count(2)
    assert sorted(members(api, source)) == [108, 115]


def test_a_slow_copy_cancelled_from_the_drawer(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    source, target = my_list(api), new_list(api, "slow")
    with slow_database(stack, delay_ms=40):
        open_list(writer, stack, source)
        writer.get_by_role("button", name="Select all 500 in this list").click()
        writer.get_by_role("button", name="Copy to…").click()
        writer.get_by_label("To list").select_option(target["id"])
        writer.get_by_role("button", name="Copy", exact=True).click()
        job = drawer_job(writer, f"Copy 500 to {target['name']}")
        expect(job.locator(".status")).to_have_text("running")
        # the progress moves while the database is slow ...
        expect(job.locator("progress")).not_to_have_js_property("value", 0, timeout=30_000)
        # ... and the grid still pages
        next_page(writer)
        expect(writer.locator("#page-of")).to_have_text("Page 2 of 10")
        expect(writer.locator("#grid tbody tr").first).to_have_attribute("data-id", "51")
        expect(writer).to_have_url(re.compile(r"page=2"))
        job.get_by_role("button", name="Cancel").click()
        expect(job.locator(".status")).to_have_text("cancelled", timeout=30_000)

    # a chunk under way when the job was cancelled still lands: the drawer and the
    # column show it once it has
    def settled() -> int | None:
        n = len(members(api, target))
        shown = column_count(writer, target).inner_text() == str(n)
        said = f"{n} added" in job.locator(".counts").inner_text()
        return n if shown and said else None

    copied = wait_until(settled, what="the column and the drawer show what was copied")
    assert 0 < copied < 500


def test_lists_created_renamed_deleted_and_companies_removed(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    name = f"made here {uuid.uuid4().hex[:6]}"
    writer.get_by_label("New list", exact=True).fill(name)
    writer.get_by_role("button", name="Create").click()
    expect(writer.locator("#list-title")).to_contain_text(name)
    expect(writer.locator("#list-count")).to_have_text("0 companies")
    expect(writer.locator("#grid")).to_contain_text("This list is empty")
    made = writer.locator("#lists-column a[aria-current=page]")
    expect(made.locator(".name")).to_have_text(name)

    writer.get_by_role("button", name="Rename").click()
    renamed = f"renamed {uuid.uuid4().hex[:6]}"
    writer.get_by_label("New name").fill(renamed)
    writer.get_by_role("button", name="Save name").click()
    expect(writer.locator("#list-title")).to_contain_text(renamed)
    expect(made.locator(".name")).to_have_text(renamed)
    assert renamed in [c["name"] for c in api.get("/collections?limit=500").json()["items"]]

    writer.get_by_role("button", name="Delete list").click()
    writer.get_by_role("button", name="Yes, delete this list").click()
    deletion = drawer_job(writer, f"Delete list {renamed}")
    expect(deletion.locator(".status")).to_have_text("completed")
    expect(writer.locator("#lists-column")).not_to_contain_text(renamed)
    expect(writer.locator("#list-title")).to_have_text("List not found")

    five = new_list(api, "five")
    fill_list(api, five, [31, 32, 33, 34, 35])
    open_list(writer, stack, five)
    pick(writer, 32)
    pick(writer, 34)
    writer.get_by_role("button", name="Remove from list").click()
    writer.get_by_role("button", name="Remove", exact=True).click()
    job = drawer_job(writer, f"Remove 2 from {five['name']}")
    expect(job.locator(".status")).to_have_text("completed")
    expect(job.locator(".counts")).to_contain_text("2 removed")
    expect(writer.locator("#list-count")).to_have_text("3 companies")
    expect(column_count(writer, five)).to_have_text("3")
    assert members(api, five) == [31, 33, 35]


def test_a_read_only_key_sees_lists_but_no_controls(
    reader: Page, stack: WholeStack, api: httpx.Client
) -> None:
    open_list(reader, stack, my_list(api))
    expect(reader.locator("#grid tbody tr")).to_have_count(50)
    expect(reader.locator("#lists-column a", has_text="Liked Companies")).to_be_visible()
    expect(reader.locator("input[type=checkbox]")).to_have_count(0)
    for name in ("Copy to…", "Move to…", "Remove from list", "Create", "Rename", "Delete list"):
        expect(reader.get_by_role("button", name=name)).to_have_count(0)
    forms = reader.locator("#new-list, #selection-bar, #rename-form, #delete-confirm")
    expect(forms).to_have_count(0)


def test_the_url_carries_list_search_and_page(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    listed = new_list(api, "paged")
    fill_list(api, listed, list(range(1, 121)))
    open_list(writer, stack, listed)
    first_rows = writer.locator("#grid tbody tr").first
    expect(first_rows).to_have_attribute("data-id", "1")
    pick(writer, 2)
    next_page(writer)
    expect(writer).to_have_url(re.compile(rf"list={listed['id']}&page=2$"))
    expect(first_rows).to_have_attribute("data-id", "51")
    pick(writer, 51)
    expect(writer.locator("#selection-count")).to_have_text("2 selected")  # kept across pages

    writer.get_by_label("Search this list").fill("Acme")  # companies 9, 18, ... 117
    expect(writer).to_have_url(re.compile(r"q=Acme$"))
    expect(writer.locator("#grid-range")).to_contain_text("1\u201313 of 13")
    expect(first_rows).to_have_attribute("data-id", "9")

    writer.reload()
    expect(writer.get_by_label("Search this list")).to_have_value("Acme")
    expect(writer.locator("#grid-range")).to_contain_text("1\u201313 of 13")
    expect(writer.locator("#selection-count")).to_have_text("2 selected")  # kept on reload

    writer.go_back()
    expect(writer).to_have_url(re.compile(r"page=2$"))
    expect(first_rows).to_have_attribute("data-id", "51")
    expect(writer.get_by_label("Search this list")).to_have_value("")
    expect(writer.locator("#pick-51")).to_be_checked()
    writer.go_back()
    expect(first_rows).to_have_attribute("data-id", "1")
    expect(writer.locator("#pick-2")).to_be_checked()
    expect(writer.locator("#page-of")).to_have_text("Page 1 of 3")
    writer.go_forward()
    expect(first_rows).to_have_attribute("data-id", "51")
    writer.get_by_role("button", name="Clear selection").click()
    expect(writer.locator("#selection-count")).to_have_text("0 selected")
    expect(writer.locator("#pick-51")).not_to_be_checked()


def test_the_page_reads_on_a_phone(browser: Browser, stack: WholeStack, api: httpx.Client) -> None:
    context = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    try:
        phone = context.new_page()
        sign_in(phone, stack)
        open_list(phone, stack, my_list(api))
        pick(phone, 4)
        expect(phone.locator("#selection-count")).to_have_text("1 selected")
        # the table scrolls inside its frame; the page itself does not scroll sideways
        wide = phone.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], wide
        phone.evaluate("window.scrollTo(0, 0)")
        shot(phone, "lists-phone")
    finally:
        context.close()
