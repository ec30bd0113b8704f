"""The Jobs pages: the dashboard (counts, the per-minute chart, the list with its
filters in the URL) and a job's page (its timeline growing live, cancel and retry)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from playwright.sync_api import Page, expect

from contracts.runtime.settings import Settings
from tests.browser.conftest import fill_list, my_list, new_list, shot, wait_until
from tests.support.whole_stack import WholeStack

DASH = "\u2013"  # the en dash of the pager's range
TURNS = ("JobStarted", "JobFailed", "JobCompleted")  # where an attempt starts and ends


def run_sql(settings: Settings, text: str) -> None:
    """Run `text` in the stack's schema (on a thread of its own: Playwright's sync API
    keeps an event loop running on this one)."""

    async def run() -> None:
        conn = await asyncpg.connect(
            settings.database_url, server_settings={"search_path": settings.db_schema}
        )
        try:
            await conn.execute(text)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@contextmanager
def refusing(settings: Settings, target: str, company: int) -> Iterator[None]:
    """Inserting `company` into list `target` fails, until the block ends (the trigger
    names only that list, so no other test's job meets it)."""
    name = f"refuse_{uuid.uuid4().hex[:10]}"
    run_sql(settings, f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.company_id = {company} AND NEW.collection_id = '{target}' THEN
          RAISE EXCEPTION 'company {company} refused on purpose'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER {name} BEFORE INSERT ON memberships
        FOR EACH ROW EXECUTE FUNCTION {name}();""")  # fmt: skip
    try:
        yield
    finally:
        run_sql(settings, f"DROP TRIGGER IF EXISTS {name} ON memberships; DROP FUNCTION {name}()")


def move(api: httpx.Client, target: dict[str, Any], ids: list[int], **extra: Any) -> Any:
    body = {"source": my_list(api)["id"], "target": target["id"], "mode": "copy",
            "selection": ids, **extra}  # fmt: skip
    response = api.post("/moves", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def status_of(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/jobs/{job_id}").json()["status"])


def failed_job(api: httpx.Client, stack: WholeStack) -> tuple[dict[str, Any], Any]:
    """A copy of companies 1..20 into a new list whose attempt 1 failed on company 10."""
    target = new_list(api, "refusing")
    with refusing(stack.settings, target["id"], 10):
        job = move(api, target, list(range(1, 21)))
        wait_until(lambda: status_of(api, job["id"]) == "failed", what="the job fails")
    return target, job


def test_dashboard_counts_chart_and_filters_in_the_url(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    page = writer
    mine = new_list(api, "dashboard")
    fill_list(api, mine, [1, 2, 3])
    fill_list(api, mine, [4, 5])
    failed_job(api, stack)
    stats = api.get("/jobs/stats").json()

    page.goto(f"{stack.url}/console/jobs")
    completed_tile = page.locator('#job-tiles [data-status="completed"] [data-count]')
    shown = int(completed_tile.inner_text().replace(",", ""))
    assert shown >= stats["by_status"]["completed"] >= 2
    assert int(page.locator('#job-tiles [data-status="failed"] [data-count]').inner_text()) >= 1
    chart = page.get_by_test_id("jobs-chart")
    expect(chart).to_have_attribute("data-drawn", "true")
    expect(chart.locator("canvas").first).to_be_visible()
    assert int(chart.get_attribute("data-completed") or 0) >= 2
    assert int(chart.get_attribute("data-failed") or 0) >= 1
    expect(page.get_by_test_id("jobs-range")).to_contain_text(
        re.compile(rf"^1{DASH}\d+ of [\d,]+$")
    )
    shot(page, "jobs")

    page.get_by_label("Status", exact=True).select_option("completed")
    expect(page).to_have_url(f"{stack.url}/console/jobs?status=completed")
    expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
    statuses = page.locator("#jobs-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    assert statuses
    assert set(statuses) == {"completed"}

    page.get_by_label("List", exact=True).select_option(label=mine["name"])
    filtered = f"{stack.url}/console/jobs?status=completed&list={mine['id']}"
    expect(page).to_have_url(filtered)
    rows = page.locator("#jobs-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("jobs-range")).to_have_text(f"1{DASH}2 of 2")
    for row in rows.all():
        expect(row).to_contain_text(mine["name"])
        expect(row).to_contain_text("completed")

    page.reload()
    expect(page).to_have_url(filtered)
    expect(page.get_by_label("Status", exact=True)).to_have_value("completed")
    expect(page.get_by_label("List", exact=True)).to_have_value(mine["id"])
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2)

    page.go_back()
    expect(page).to_have_url(f"{stack.url}/console/jobs?status=completed")
    expect(page.get_by_label("List", exact=True)).to_have_value("")
    page.go_back()
    expect(page).to_have_url(f"{stack.url}/console/jobs")
    expect(page.get_by_label("Status", exact=True)).to_have_value("")
    expect(page.locator('#jobs-table tbody tr[data-status="failed"]').first).to_be_visible()

    failed_tile = page.locator('#job-tiles [data-status="failed"]')
    failed_tile.click()
    expect(page).to_have_url(f"{stack.url}/console/jobs?status=failed")
    expect(failed_tile).to_have_attribute("aria-current", "true")
    expect(page.get_by_label("Status", exact=True)).to_have_value("failed")
    expect(page.locator('#jobs-table tbody tr:not([data-status="failed"])')).to_have_count(0)


def test_a_new_job_appears_in_the_list_and_its_tile_live(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    page = writer
    target = new_list(api, "live")
    page.goto(f"{stack.url}/console/jobs?list={target['id']}")
    expect(page.locator("#jobs-table .empty")).to_contain_text("No job matches these filters")
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("window.notReloaded = true")
    job = move(api, target, [7, 8, 9])
    row = page.locator(f'#jobs-table tr[data-job-id="{job["id"]}"]')
    expect(row).to_have_attribute("data-status", "completed")
    expect(page.get_by_test_id("jobs-range")).to_have_text(f"1{DASH}1 of 1")
    assert page.evaluate("window.notReloaded") is True


def test_a_retried_jobs_timeline_grows_live(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    page = writer
    target, job = failed_job(api, stack)
    page.goto(f"{stack.url}/console/jobs/{job['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("failed")
    expect(page.get_by_test_id("job-error")).to_contain_text("company 10 refused on purpose")
    rows = page.locator("#timeline-rows tr")
    expect(rows.last).to_have_attribute("data-type", "JobFailed")
    expect(page.locator("h1")).to_contain_text("Copy job")
    expect(page.locator(".route")).to_contain_text(target["name"])
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("window.notReloaded = true")

    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_test_id("job-status")).to_have_text("completed")
    expect(rows.last).to_have_attribute("data-type", "JobCompleted")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.get_by_test_id("job-attempts")).to_have_text("2 of 3")
    expect(page.get_by_test_id("job-done")).to_have_text("20 of 20")
    assert page.evaluate("window.notReloaded") is True, "the page was not reloaded"

    items = rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.entryId, r.dataset.type, Number(r.dataset.attempt)])"
    )
    timeline = api.get(f"/jobs/{job['id']}/timeline", params={"limit": 500}).json()["items"]
    assert [i[0] for i in items] == [t["entry_id"] for t in timeline], "every event once, in order"
    turns = [(kind, attempt) for _, kind, attempt in items if kind in TURNS]
    assert turns == [("JobStarted", 1), ("JobFailed", 1), ("JobStarted", 2), ("JobCompleted", 2)]
    shot(page, "job")


def test_cancel_a_scheduled_job_from_its_page(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    page = writer
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job = move(api, new_list(api, "later"), [1, 2], not_before=later)
    page.goto(f"{stack.url}/console/jobs/{job['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("scheduled")
    expect(page.locator("#live-state")).to_have_text("live")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.locator("#timeline-rows tr").last).to_have_attribute("data-type", "JobCancelled")
    assert status_of(api, job["id"]) == "cancelled"


def test_a_read_only_key_sees_no_buttons(
    reader: Page, stack: WholeStack, api: httpx.Client
) -> None:
    page = reader
    _, failed = failed_job(api, stack)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = move(api, new_list(api, "later"), [3], not_before=later)
    wait_until(lambda: status_of(api, scheduled["id"]) == "scheduled", what="scheduled")
    try:
        page.goto(f"{stack.url}/console/jobs")
        expect(page.get_by_test_id("jobs-chart")).to_have_attribute("data-drawn", "true")
        expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
        for job, status in ((failed, "failed"), (scheduled, "scheduled")):
            page.goto(f"{stack.url}/console/jobs/{job['id']}")
            expect(page.get_by_test_id("job-status")).to_have_text(status)
            expect(page.locator("#timeline-rows tr").first).to_be_visible()
            expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
            expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    finally:
        api.post(f"/jobs/{scheduled['id']}/cancel")


def test_a_refused_action_shows_why(writer: Page, stack: WholeStack, api: httpx.Client) -> None:
    """A page that missed an event (its feed cut) offers Cancel on a job cancelled
    elsewhere: the API's 409 detail is shown, and the page catches up."""
    page = writer
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job = move(api, new_list(api, "stale"), [4], not_before=later)
    wait_until(lambda: status_of(api, job["id"]) == "scheduled", what="scheduled")
    page.route(re.compile(r".*/events\?.*"), lambda route: route.abort())
    page.goto(f"{stack.url}/console/jobs/{job['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("scheduled")
    assert api.post(f"/jobs/{job['id']}/cancel").status_code == 202
    wait_until(lambda: status_of(api, job["id"]) == "cancelled", what="cancelled elsewhere")

    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_contain_text(f"job {job['id']} is cancelled already")
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)


def test_an_unknown_job_and_bad_filters_say_so(writer: Page, stack: WholeStack) -> None:
    page = writer
    response = page.goto(f"{stack.url}/console/jobs/{uuid.uuid4().hex}")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("does not exist")
    page.goto(f"{stack.url}/console/jobs?status=lost&list=nope")
    alerts = page.get_by_role("alert")
    expect(alerts.filter(has_text="status 'lost' is not one of")).to_be_visible()
    expect(alerts.filter(has_text="list 'nope' is not a list id")).to_be_visible()
    expect(page.get_by_label("Status", exact=True)).to_have_value("")


def test_the_dashboard_on_a_phone(writer: Page, stack: WholeStack) -> None:
    page = writer
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{stack.url}/console/jobs")
    expect(page.get_by_test_id("jobs-chart")).to_have_attribute("data-drawn", "true")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    shot(page, "jobs-phone")
