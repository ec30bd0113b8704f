"""The Live page: the jobs and batches log, from the events made before it opened, and
on across a cut connection with every event once, in order."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import redis
from playwright.sync_api import Page, expect

from contracts import streams
from tests.browser.conftest import PHONE, my_list, new_list, shot, wait_until
from tests.support.whole_stack import WholeStack


def copy_job(api: httpx.Client, ids: list[int]) -> str:
    """A copy of `ids` from My List into a new list; the job's id."""
    target = new_list(api, "live")
    response = api.post("/moves", json={"source": my_list(api)["id"], "target": target["id"],
                                        "mode": "copy", "selection": ids})  # fmt: skip
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def finished(api: httpx.Client, job_id: str) -> bool:
    return api.get(f"/jobs/{job_id}").json()["status"] == "completed"


def stream_event_ids(stack: WholeStack, job_id: str) -> list[str]:
    """The message ids of the job's events in jobs.events, in stream order (the truth)."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    try:
        name = streams.JOBS_EVENTS.prefixed(stack.settings.stream_prefix).name
        decoder = streams.JOBS_EVENTS.decoder()
        found: list[str] = []
        for _entry, fields in client.xrange(name):  # type: ignore[union-attr]
            message: Any = decoder.decode(fields[b"__data__"])
            if message.job_id == job_id:
                found.append(message.id)
        return found
    finally:
        client.close()


def logged_event_ids(page: Page, job_id: str) -> list[str]:
    return page.locator(f'#live-lines li[data-job-id="{job_id}"]').evaluate_all(
        "items => items.map(i => i.dataset.eventId)"
    )


def cut(page: Page) -> None:
    """Cut the log's connection: the browser goes offline, and the feed's open EventSource
    fails as a dropped one does. (Chromium's offline mode fails new requests but leaves an
    open EventSource to 127.0.0.1 streaming, so the drop is signalled on it: its own error
    handler runs, which is the page's reconnect logic.)"""
    page.context.set_offline(True)
    page.evaluate("() => window.liveLog.feed.source.dispatchEvent(new Event('error'))")


def test_the_log_shows_the_events_made_before_it_opened(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    job = copy_job(api, [1, 2, 3])
    wait_until(lambda: finished(api, job), what=f"job {job} completes")

    writer.goto(f"{stack.url}/console/live")
    lines = writer.locator(f'#live-lines li[data-job-id="{job}"]')
    expect(lines.first).to_be_visible()
    expect(
        writer.locator(f'#live-lines li[data-job-id="{job}"][data-type="JobCompleted"]')
    ).to_contain_text("3 of 3 done")
    assert logged_event_ids(writer, job) == stream_event_ids(stack, job)
    link = lines.first.get_by_role("link")
    expect(link).to_have_attribute("href", f"/console/jobs/{job}")
    expect(writer.locator("#live-state")).to_have_text("live")

    batch = f"live-{uuid.uuid4().hex[:6]}"  # live events come in below
    response = api.post("/batches", json={"batch_id": batch, "rate": 4})
    assert response.status_code == 201, response.text
    try:
        started = writer.locator(
            f'#live-lines li[data-batch-id="{batch}"][data-type="BatchStarted"]'
        )
        expect(started).to_contain_text("4 points/s")
        expect(started.get_by_role("link")).to_have_attribute("href", f"/console/batches/{batch}")
    finally:
        assert api.delete(f"/batches/{batch}").status_code == 200
    stopped = writer.locator(f'#live-lines li[data-batch-id="{batch}"][data-type="BatchStopped"]')
    expect(stopped).to_have_count(1)
    shot(writer, "live")

    writer.get_by_role("navigation", name="Which events").get_by_role(
        "link", name="Batches", exact=True
    ).click()
    expect(writer).to_have_url(f"{stack.url}/console/live?show=batches")
    expect(writer.locator(f'#live-lines li[data-batch-id="{batch}"]').first).to_be_visible()
    expect(writer.locator("#live-lines li[data-job-id]")).to_have_count(0)


def test_the_log_resumes_after_the_connection_is_cut(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    writer.goto(f"{stack.url}/console/live?show=jobs")
    expect(writer.locator("#live-state")).to_have_text("live")
    before = copy_job(api, [4, 5])
    completed = f'#live-lines li[data-job-id="{before}"][data-type="JobCompleted"]'
    expect(writer.locator(completed)).to_have_count(1)

    cursor = writer.evaluate("() => window.liveLog.feed.cursor")
    assert cursor.startswith("jobs:")
    feeds: list[str] = []
    writer.on("request", lambda r: feeds.append(r.url) if "/events?" in r.url else None)
    cut(writer)
    expect(writer.locator("#live-state")).to_have_text("reconnecting")
    during = [copy_job(api, [10 + i, 20 + i]) for i in range(3)]
    for job in during:
        wait_until(lambda job=job: finished(api, job), what=f"job {job} completes")
    for job in during:  # the page was cut off: it has none of them yet
        expect(writer.locator(f'#live-lines li[data-job-id="{job}"]')).to_have_count(0)

    writer.context.set_offline(False)
    # the page retries with a growing delay (at most 10 s), a fresh ticket and after=
    expect(writer.locator("#live-state")).to_have_text("live", timeout=20_000)
    for job in during:
        expect(
            writer.locator(f'#live-lines li[data-job-id="{job}"][data-type="JobCompleted"]')
        ).to_have_count(1)
    # it came back on a new connection, from where it was cut
    assert any(parse_qs(urlsplit(url).query).get("after") == [cursor] for url in feeds), feeds
    for job in [before, *during]:  # each event once, in stream order; none lost
        assert logged_event_ids(writer, job) == stream_event_ids(stack, job)
    every = writer.locator("#live-lines li").evaluate_all(
        "items => items.map(i => i.dataset.eventId)"
    )
    assert len(every) == len(set(every))


def test_a_paused_log_keeps_new_events_until_it_resumes(
    writer: Page, stack: WholeStack, api: httpx.Client
) -> None:
    writer.goto(f"{stack.url}/console/live?show=jobs")
    expect(writer.locator("#live-state")).to_have_text("live")
    writer.get_by_role("button", name="Pause").click()
    expect(writer.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    job = copy_job(api, [30, 31])
    wait_until(lambda: finished(api, job), what=f"job {job} completes")
    expect(writer.locator("#live-status")).to_contain_text("new events wait until you resume")
    expect(writer.locator(f'#live-lines li[data-job-id="{job}"]')).to_have_count(0)

    writer.get_by_role("button", name="Resume").click()
    completed = writer.locator(f'#live-lines li[data-job-id="{job}"][data-type="JobCompleted"]')
    expect(completed).to_have_count(1)
    assert logged_event_ids(writer, job) == stream_event_ids(stack, job)

    writer.set_viewport_size(PHONE)  # type: ignore[arg-type]
    expect(completed).to_be_visible()
    assert writer.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(writer, "live-phone")
