"""The Batches pages: start a batch from the form and watch it (points on the chart,
a closed minute), stop it; a start past the limit refused with the reason and the
running batches on screen; a read-only key sees no start form and no stop button."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Page, expect

from contracts import codec, streams
from contracts.messages import Point, RecordPoints, new_id, utcnow
from contracts.minutes import floor_minute
from tests.browser.conftest import PHONE, shot, wait_until
from tests.support.whole_stack import WholeStack

LIMIT = 5


def batch_id(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def started(api: httpx.Client) -> Iterator[list[str]]:
    """Batch ids a test starts; each is stopped at its end (the stack is shared)."""
    ids: list[str] = []
    yield ids
    for one in ids:
        api.post(f"/batches/{one}/stop")


def start(api: httpx.Client, one: str, rate: float = 2) -> httpx.Response:
    return api.post("/batches", json={"batch_id": one, "rate": rate})


def record_minute(stack: WholeStack, one: str, keys: list[float]) -> None:
    """Points of the minute before this one, as a producer that stamped them then would
    send them: on time for that minute, which closes within the grace (10 s) of now."""
    minute = floor_minute(utcnow()) - timedelta(minutes=1)
    stamped = minute + timedelta(seconds=30)
    message = RecordPoints(
        id=new_id(), batch_id=one, points=[Point(key=k, ts=stamped) for k in keys],
        received_at=stamped,
    )  # fmt: skip
    client = redis.Redis.from_url(stack.settings.redis_url)
    try:
        client.xadd(
            streams.INGEST_POINTS.prefixed(stack.settings.stream_prefix).name,
            codec.entry_fields(message),  # type: ignore[arg-type]
        )
    finally:
        client.close()


def shown(value: Any) -> str:
    """A number as the page writes it."""
    if value is None:
        return "\u2013"  # an en dash
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:,.3f}"


def test_start_watch_and_stop_a_batch(
    writer: Page, stack: WholeStack, api: httpx.Client, started: list[str]
) -> None:
    page = writer
    one = batch_id("watch")
    page.goto(f"{stack.url}/console/batches")
    page.get_by_label("Batch id").fill(one)
    page.get_by_label("Rate (points/s)").fill("20")
    page.get_by_label("Distribution").select_option("normal")
    page.get_by_role("button", name="Start batch").click()
    started.append(one)
    expect(page).to_have_url(f"{stack.url}/console/batches/{one}")
    expect(page.get_by_test_id("batch-status")).to_have_text("running")
    assert api.get(f"/batches/{one}").json()["distribution"] == "normal"

    # Its live points reach the chart.
    expect(page.get_by_test_id("points-received")).not_to_have_text("0")
    wait_until(lambda: int(page.locator("#chart").get_attribute("data-points") or 0) > 5,
               what="points on the chart")  # fmt: skip

    # A minute closes: the tiles and the history show its aggregate, as /agg has it.
    record_minute(stack, one, [-1000.0, 1000.0, 3.5])
    tiles = page.get_by_test_id("last-minute")
    expect(tiles.locator('[data-field="max"]')).to_have_text("1,000", timeout=40_000)
    expect(tiles.locator('[data-field="min"]')).to_have_text("-1,000")
    at = int(tiles.get_attribute("data-minute") or 0) // 1000
    minute = datetime.fromtimestamp(at, tz=UTC)
    span = {"from": minute.isoformat(), "to": (minute + timedelta(minutes=1)).isoformat()}
    agg = api.get(f"/batches/{one}/agg", params=span).json()["minutes"][0]
    assert agg["closed"]
    assert agg["count"] >= 3
    for field in ("count", "sum", "avg", "min", "max"):
        expect(tiles.locator(f'[data-field="{field}"]')).to_have_text(shown(agg[field]))
    row = page.locator(f'#minutes tr[data-minute="{at * 1000}"]')
    expect(row.locator("td").nth(1)).to_have_text(shown(agg["count"]))
    expect(row).to_contain_text("closed")
    shot(page, "batch")

    # Stop: back on the overview, not running any more.
    page.get_by_role("button", name="Stop batch").click()
    expect(page).to_have_url(f"{stack.url}/console/batches")
    expect(page.locator(f'#running-batches tr[data-batch-id="{one}"]')).to_have_count(0)
    assert api.get(f"/batches/{one}").json()["status"] == "stopped"
    expect(page.locator(f'#all-batches tr[data-batch-id="{one}"]')).to_have_attribute(
        "data-status", "stopped"
    )


def test_a_start_past_the_limit_shows_why_and_what_runs(
    writer: Page, stack: WholeStack, api: httpx.Client, started: list[str]
) -> None:
    page = writer
    page.goto(f"{stack.url}/console/batches")
    # Fill the limit over the API; the overview follows live (no reload).
    while api.get("/stats").json()["batches_running"] < LIMIT:
        one = batch_id("full")
        response = start(api, one)
        assert response.status_code == 201, response.text
        started.append(one)
    running = sorted(b["batch_id"] for b in all_running(api))
    expect(page.get_by_test_id("running-count")).to_contain_text(f"{LIMIT} of {LIMIT}")
    for one in started:
        expect(page.locator(f'#running-batches tr[data-batch-id="{one}"]')).to_be_visible()

    # The sixth, from the form with the keyboard: refused, and the page says why.
    sixth = batch_id("sixth")
    page.get_by_label("Batch id").fill(sixth)
    page.get_by_label("Batch id").press("Enter")
    refusal = page.locator("#start-error")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text(f"At most {LIMIT} batches run at once")
    listed = refusal.get_by_test_id("refused-running").get_by_role("link")
    expect(listed).to_have_text(running)
    assert api.get(f"/batches/{sixth}").status_code == 404  # nothing started
    shot(page, "batches")


def all_running(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"limit": 100} | ({"after": after} if after else {})
        body = api.get("/batches", params=params).json()
        items += [b for b in body["items"] if b["status"] == "running"]
        after = body["next_after"]
        if after is None:
            return items


def test_a_read_only_key_sees_no_start_form_and_no_stop_button(
    reader: Page, stack: WholeStack, api: httpx.Client, started: list[str]
) -> None:
    page = reader
    one = batch_id("ro")
    assert start(api, one).status_code == 201
    started.append(one)
    page.goto(f"{stack.url}/console/batches")
    expect(page.locator(f'#running-batches tr[data-batch-id="{one}"]')).to_be_visible()
    expect(page.locator("#start-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Start batch")).to_have_count(0)
    page.get_by_role("link", name=one).first.click()
    expect(page).to_have_url(f"{stack.url}/console/batches/{one}")
    expect(page.get_by_test_id("batch-status")).to_have_text("running")
    expect(page.get_by_test_id("points-received")).not_to_have_text("0")
    expect(page.get_by_role("button", name=re.compile("Stop"))).to_have_count(0)


def test_the_pages_fit_a_phone_and_an_unknown_batch_says_so(
    writer: Page, stack: WholeStack, api: httpx.Client, started: list[str]
) -> None:
    page = writer
    one = batch_id("phone")
    assert start(api, one).status_code == 201
    started.append(one)
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    for path in ("/console/batches", f"/console/batches/{one}"):
        page.goto(f"{stack.url}{path}")
        expect(page.locator("h1")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    response = page.goto(f"{stack.url}/console/batches/never-{uuid.uuid4().hex[:6]}")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="No such batch")).to_be_visible()
