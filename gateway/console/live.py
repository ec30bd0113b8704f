"""The console's Live section (/console/live): jobs and batches events as a scrolling log.

GET /console/live?show=all|jobs|batches

The page shows the newest events made before it opened (gateway.feeds.recent reads
them from jobs.events and batches.events) and hands static/live.js the cursor just
after them; the script follows `GET /events?topics=...&after=<cursor>` through
`Console.live`, which reopens a dropped feed with a fresh ticket from the last event
id it saw. So the log goes on from what the page rendered, across reconnects, with no
event missed or shown twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template
from redis.asyncio import Redis

from contracts import messages, streams
from contracts.runtime.settings import Settings
from gateway.console.render import page
from gateway.feeds.recent import recent

RECENT = 50  # events shown from before the page opened
TOPICS = {"jobs": streams.JOBS_EVENTS, "batches": streams.BATCHES_EVENTS}
SHOWN = {"all": ("batches", "jobs"), "jobs": ("jobs",), "batches": ("batches",)}
# The feed's event names: the message types of each topic's stream.
EVENT_TYPES = {
    "jobs": [t.__name__ for t in get_args(messages.JobEvent)],
    "batches": [t.__name__ for t in get_args(messages.BatchEvent)],
}

Show = Annotated[
    Literal["all", "jobs", "batches"],
    QueryParameter(description="which events: all, jobs or batches"),
]


@get("/live", name="console-live")
async def live_page(
    request: Request[Any, Any, Any],
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    show: Show = "all",
) -> Template:
    topics = SHOWN[show]
    events, cursor = await recent(
        redis, settings.stream_prefix, {t: TOPICS[t] for t in topics}, count=RECENT
    )
    return page(
        request, "live/index.html", "live",
        show=show, shows=list(SHOWN), topics=",".join(topics), cursor=cursor,
        types=[name for t in topics for name in EVENT_TYPES[t]],
        recent=[{"topic": e.topic, "type": e.type, "data": e.data} for e in events],
    )  # fmt: skip


ROUTES = [live_page]
