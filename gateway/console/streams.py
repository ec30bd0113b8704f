"""The console's Streams section, for operators: every stream with its groups, and a
stream's dead letters with their reason, to replay.

GET /console/streams                                    the page
GET /console/streams/table                              its table alone (htmx polls it)
GET /console/streams/{stream}/dead-letters?count=100    a stream's newest dead letters
GET /console/streams/{stream}/dead-letters/list?count=  that list alone (htmx, after a replay)

They read Redis through contracts.delivery (the overview and `list_dead`), as
`GET /streams` and `GET /streams/{stream}/dead-letters` do; `{stream}` is a name of
contracts/streams.py without the stream prefix. Replay goes from static/streams.js to
`POST /streams/{stream}/dead-letters/replay` (write scope); a read-only key is shown
no Replay button.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Template
from redis.asyncio import Redis

from contracts import streams
from contracts.delivery import DeadLetter, list_dead
from contracts.delivery.overview import StreamOverview, overview
from contracts.runtime.settings import Settings
from gateway.console.render import fragment, page
from gateway.frontdoor.problems import ProblemError

SHORT_DATA = 80  # characters of a dead letter's payload shown before <details>
Count = Annotated[int, QueryParameter(ge=1, le=1000, description="dead letters, newest first")]


def duration(ms: int | None) -> str:
    """A duration as a person reads it: "4 s", "2 min", "3 h", "1 d" (a dash: none)."""
    if ms is None:
        return "\N{EN DASH}"
    seconds = ms // 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s" if seconds else f"{ms} ms"


@dataclass(frozen=True)
class Letter:
    """A dead letter as the page shows it."""

    dlq_id: str
    failed_at: datetime
    group: str
    consumer: str
    deliveries: int
    reason: str
    short: str  # the payload's first SHORT_DATA characters
    full: str  # the payload, indented when it is JSON
    long: bool  # more than `short` to show


def letter(dead: DeadLetter) -> Letter:
    try:
        full = json.dumps(json.loads(dead.data), indent=2, ensure_ascii=False)
    except ValueError:
        full = dead.data
    long = len(dead.data) > SHORT_DATA or full != dead.data
    short = dead.data[:SHORT_DATA] + ("…" if len(dead.data) > SHORT_DATA else "")
    return Letter(
        dlq_id=dead.dlq_id, failed_at=datetime.fromtimestamp(dead.failed_at_ms / 1000, UTC),
        group=dead.group, consumer=dead.consumer, deliveries=dead.deliveries,
        reason=dead.reason, short=short, full=full, long=long,
    )  # fmt: skip


async def _table(redis: Redis, settings: Settings) -> dict[str, Any]:
    rows: list[StreamOverview] = await overview(redis, settings.stream_prefix)
    return {"streams": rows, "duration": duration, "now": datetime.now(UTC)}


@get("/streams", name="console-streams")
async def streams_page(
    request: Request[Any, Any, Any],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
) -> Template:
    return page(request, "streams/index.html", "streams", **await _table(redis, settings))


@get("/streams/table", name="console-streams-table")
async def streams_table(
    redis: NamedDependency[Redis], settings: NamedDependency[Settings]
) -> Template:
    return fragment("streams/_table.html", **await _table(redis, settings))


async def _letters(redis: Redis, settings: Settings, stream: str, count: int) -> dict[str, Any]:
    key = streams.by_name(stream).prefixed(settings.stream_prefix).name
    found = await list_dead(redis, key, count=count, newest_first=True)
    return {
        "stream": stream, "count": count, "total": int(await redis.xlen(f"{key}.dlq")),
        "letters": [letter(d) for d in found],
    }  # fmt: skip


def _known(stream: str) -> bool:
    return any(spec.name == stream for spec in streams.ALL)


@get("/streams/{stream:str}/dead-letters", name="console-dead-letters")
async def dead_letters_page(
    request: Request[Any, Any, Any],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    stream: FromPath[str],
    count: Count = 100,
) -> Template:
    if not _known(stream):
        missing = page(request, "streams/missing.html", "streams", stream=stream[:100],
                       known=[s.name for s in streams.ALL])  # fmt: skip
        missing.status_code = HTTPStatus.NOT_FOUND
        return missing
    letters = await _letters(redis, settings, stream, count)
    return page(request, "streams/dead_letters.html", "streams", **letters)


@get("/streams/{stream:str}/dead-letters/list", name="console-dead-letters-list")
async def dead_letters_list(
    request: Request[Any, Any, Any],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    stream: FromPath[str],
    count: Count = 100,
) -> Template:
    if not _known(stream):
        raise ProblemError(HTTPStatus.NOT_FOUND, f"no stream {stream[:100]!r}")
    letters = await _letters(redis, settings, stream, count)
    return page(request, "streams/_letters.html", "streams", **letters)


ROUTES = [streams_page, streams_table, dead_letters_page, dead_letters_list]
