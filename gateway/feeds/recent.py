"""The last events of a feed, read once, and the cursor that follows them exactly.

    events, cursor = await recent(redis, prefix, {"jobs": JOBS_EVENTS, "batches": ...})

A live feed without `after` starts at the streams' current end, so a page that wants
to show what happened just before it opened reads the newest entries of each stream
here (`XREVRANGE`), shows them, and opens the feed with `after=<cursor>`: the feed's
backlog then starts right after the newest entry read, so nothing is shown twice
and nothing is missed (gateway/feeds/fanout.py: a backlog then live, no gaps).

The cursor has every topic's newest entry id, `"0-0"` for an empty or missing stream
(the feed then sends its whole backlog, which is what arrived after this read).
Entries that do not decode as the stream's messages are skipped, as the feed skips
them; the cursor still passes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from contracts.codec import DATA_FIELD, entry_key
from contracts.streams import StreamSpec
from gateway.feeds.sse import encode_cursor

EMPTY = "0-0"


@dataclass(frozen=True)
class RecentEvent:
    topic: str
    entry_id: str
    type: str  # the event's name, as the feed sends it (`JobQueued`)
    data: dict[str, Any]  # the message as JSON, as the feed's `data`


async def recent(
    redis: Redis, prefix: str, topics: Mapping[str, StreamSpec], *, count: int = 50
) -> tuple[list[RecentEvent], str]:
    """The newest `count` events of all `topics` together, oldest first, and the cursor
    (`topic:entry-id,...`) to resume the feed of those topics right after them."""
    found: list[RecentEvent] = []
    positions: dict[str, str] = {}
    for topic, spec in topics.items():
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await redis.xrevrange(spec.prefixed(prefix).name, count=count),
        )
        positions[topic] = entries[0][0].decode() if entries else EMPTY
        found.extend(_decoded(topic, spec, entries))
    found.sort(key=lambda e: (entry_key(e.entry_id), e.topic))
    return found[-count:] if count else [], encode_cursor(positions)


def _decoded(
    topic: str, spec: StreamSpec, entries: list[tuple[bytes, dict[bytes, bytes]]]
) -> list[RecentEvent]:
    decoder = spec.decoder()
    events = []
    for entry_id, fields in entries:
        raw = fields.get(DATA_FIELD, b"")
        try:
            message = decoder.decode(raw)
        except msgspec.MsgspecError:
            continue
        events.append(
            RecentEvent(
                topic=topic,
                entry_id=entry_id.decode(),
                type=type(message).__name__,
                data=msgspec.json.decode(raw),
            )
        )
    return events
