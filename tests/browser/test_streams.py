"""The Streams pages: the streams with their groups, a stream's dead letters with the
reason, and replay (write key only).

A poison entry is a message of a type no consumer knows, appended with redis-py as a
broken producer would: its group dead-letters it at its first delivery ("undecodable").
Replayed, it is still poison, so it comes back as a new dead letter (a new DLQ id):
the page shows exactly that. Each test removes its own dead letters at its end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterator
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Page, expect

from contracts import streams
from tests.browser.conftest import PHONE, shot, wait_until
from tests.support.whole_stack import WholeStack


class Poison:
    """Poison entries on the stack's streams, and their dead letters removed at the end."""

    def __init__(self, stack: WholeStack, api: httpx.Client) -> None:
        self.stack, self.api = stack, api
        self.marker = f"poison-{uuid.uuid4().hex[:8]}"
        self.client = redis.Redis.from_url(stack.settings.redis_url)

    def add(self, stream: str) -> None:
        body = {"type": "NoSuchCommand", "id": uuid.uuid4().hex, "note": self.marker,
                "why": "a message of a type no consumer knows"}  # fmt: skip
        key = streams.by_name(stream).prefixed(self.stack.settings.stream_prefix).name
        self.client.xadd(key, {"__data__": json.dumps(body)})

    def dead(self, stream: str) -> list[dict[str, Any]]:
        """Our dead letters of `stream`, newest first (GET /streams/{stream}/dead-letters)."""
        response = self.api.get(f"/streams/{stream}/dead-letters", params={"count": 1000})
        assert response.status_code == 200, response.text
        return [d for d in response.json()["dead_letters"] if self.marker in d["data"]]

    def wait_dead(self, stream: str, n: int, *, besides: Collection[str] = ()) -> list[str]:
        """Wait until `stream` has `n` dead letters of ours (none of the ids in `besides`)."""

        def ours() -> list[str] | None:
            ids = [d["dlq_id"] for d in self.dead(stream) if d["dlq_id"] not in besides]
            return ids if len(ids) == n else None

        return list(wait_until(ours, what=f"{n} dead letters of ours on {stream}"))

    def clean(self) -> None:
        for spec in streams.ALL:
            dlq = spec.prefixed(self.stack.settings.stream_prefix).dlq
            mine = [i for i, f in self.client.xrange(dlq) if self.marker.encode() in f[b"__data__"]]  # type: ignore[union-attr]
            if mine:
                self.client.xdel(dlq, *mine)
        self.client.close()


@pytest.fixture
def poison(stack: WholeStack, api: httpx.Client) -> Iterator[Poison]:
    made = Poison(stack, api)
    try:
        yield made
    finally:
        made.clean()


def dlq_total(api: httpx.Client, stream: str) -> int:
    return int(api.get(f"/streams/{stream}/dead-letters", params={"count": 1}).json()["total"])


def test_a_dead_letter_is_shown_with_its_reason_and_replayed(
    writer: Page, stack: WholeStack, api: httpx.Client, poison: Poison
) -> None:
    poison.add("mover.commands")
    (first,) = poison.wait_dead("mover.commands", 1)

    writer.goto(f"{stack.url}/console/streams")
    mover = writer.locator('tbody[data-stream="mover.commands"]')
    expect(mover.locator('[data-col="group"]')).to_have_text("mover")
    expect(mover.locator('[data-col="pending"]')).to_have_text("0")
    dead = mover.locator('[data-col="dead-letters"]')
    expect(dead).to_have_text(str(dlq_total(api, "mover.commands")))
    expect(writer.locator('tbody[data-stream="jobs.events"] [data-col="group"]')).to_have_text(
        "aggregator"
    )
    # the table follows by itself (an htmx poll), without reloading the page
    writer.evaluate("() => { window.stillHere = true; }")
    poison.add("mover.chunks")
    poison.wait_dead("mover.chunks", 1)
    chunks = writer.locator('tbody[data-stream="mover.chunks"] [data-col="dead-letters"]')
    expect(chunks).to_have_text(str(dlq_total(api, "mover.chunks")), timeout=15_000)
    assert writer.evaluate("() => window.stillHere") is True
    shot(writer, "streams")

    dead.get_by_role("link").click()
    expect(writer).to_have_url(f"{stack.url}/console/streams/mover.commands/dead-letters")
    row = writer.locator(f'tr[data-dlq-id="{first}"]')
    expect(row).to_contain_text("undecodable")
    expect(row).to_contain_text("NoSuchCommand")
    row.locator("summary").click()  # the whole message, indented
    expect(row.locator("pre")).to_contain_text(f'"note": "{poison.marker}"')
    shot(writer, "dead-letters")

    row.get_by_role("button", name=f"Replay dead letter {first}").click()
    expect(writer.locator(".notice")).to_contain_text("Replayed 1 dead letter onto mover.commands")
    expect(row).to_have_count(0)
    # still poison: the mover gives it up again, as a new dead letter with the same reason
    (again,) = poison.wait_dead("mover.commands", 1, besides={first})
    writer.get_by_role("button", name="Refresh").click()
    expect(writer.locator(f'tr[data-dlq-id="{again}"]')).to_contain_text("undecodable")
    expect(writer.locator(f'tr[data-dlq-id="{first}"]')).to_have_count(0)


def test_replay_all_puts_every_dead_letter_of_a_stream_back(
    writer: Page, stack: WholeStack, api: httpx.Client, poison: Poison
) -> None:
    poison.add("mover.express")
    poison.add("mover.express")
    before = poison.wait_dead("mover.express", 2)
    assert dlq_total(api, "mover.express") == 2, "only this test's dead letters on mover.express"

    writer.goto(f"{stack.url}/console/streams/mover.express/dead-letters")
    expect(writer.get_by_test_id("dead-total")).to_have_text("2 dead letters.")
    writer.once("dialog", lambda dialog: dialog.accept())
    writer.get_by_role("button", name="Replay all").click()
    expect(writer.locator(".notice")).to_contain_text("Replayed 2 dead letters onto mover.express")
    for dlq_id in before:
        expect(writer.locator(f'tr[data-dlq-id="{dlq_id}"]')).to_have_count(0)
    after = poison.wait_dead("mover.express", 2, besides=set(before))
    writer.get_by_role("button", name="Refresh").click()
    for dlq_id in after:
        expect(writer.locator(f'tr[data-dlq-id="{dlq_id}"]')).to_contain_text("undecodable")


def test_a_read_only_key_sees_dead_letters_but_no_replay(
    reader: Page, stack: WholeStack, poison: Poison
) -> None:
    poison.add("mover.commands")
    (dlq_id,) = poison.wait_dead("mover.commands", 1)
    reader.goto(f"{stack.url}/console/streams/mover.commands/dead-letters")
    expect(reader.locator(f'tr[data-dlq-id="{dlq_id}"]')).to_contain_text("undecodable")
    expect(reader.get_by_role("button", name="Refresh")).to_be_visible()
    expect(reader.get_by_role("button", name="Replay", exact=False)).to_have_count(0)

    reader.set_viewport_size(PHONE)  # type: ignore[arg-type]
    for path in ("/console/streams", "/console/streams/mover.commands/dead-letters"):
        reader.goto(f"{stack.url}{path}")  # tables scroll inside their frame, not the page
        expect(reader.locator("table").first).to_be_visible()
        assert reader.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    expect(reader.locator("#live-state")).to_have_text("live")
    shot(reader, "dead-letters-phone")


def test_an_unknown_stream_is_a_page_that_says_so(writer: Page, stack: WholeStack) -> None:
    response = writer.goto(f"{stack.url}/console/streams/no.such/dead-letters")
    assert response is not None
    assert response.status == 404
    expect(writer.get_by_role("alert")).to_contain_text("There is no stream no.such")
    writer.get_by_role("link", name="mover.commands").click()
    expect(writer).to_have_url(f"{stack.url}/console/streams/mover.commands/dead-letters")
