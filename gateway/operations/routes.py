"""The streams and their dead letters over HTTP (the console's Streams page).

    GET  /streams                                   every stream, its groups and dead letters
    GET  /streams/{stream}/dead-letters?count=100   the newest `count` (1..1000) dead letters
    POST /streams/{stream}/dead-letters/replay      {"ids": [dlq ids]} or {"all": true}

`{stream}` is a name of contracts/streams.py (`mover.commands`), without the settings'
stream prefix; another name is 404 listing the known ones. Replay appends each dead
letter to its stream again and deletes it from the DLQ in one MULTI (same message id,
so groups that had applied it change nothing), so a replay of an id no longer in the
DLQ is a 404 naming it; when any id names no dead letter nothing is replayed.
`{"all": true}` replays the oldest 1000; `left` says how many remain. Replay needs
the `write` scope (the front door, gateway/frontdoor/auth.py), the reads `read`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from redis.asyncio import Redis

from contracts import streams
from contracts.delivery import list_dead, replay
from contracts.delivery.deadletter import find_dead
from contracts.delivery.overview import overview
from contracts.runtime.settings import Settings
from contracts.streams import StreamSpec
from gateway.frontdoor.fields import BOUNDS_AS_422
from gateway.frontdoor.problems import ProblemError
from gateway.operations.views import (
    DeadLettersView,
    ReplayedView,
    StreamsView,
    dead_letter_view,
)

REPLAY_AT_MOST = 1000  # dead letters in one replay (ids listed, or the oldest with `all`)
MAX_ID_LENGTH = 41  # `ms-seq`, two 64-bit numbers

Count = Annotated[
    int, QueryParameter(ge=1, le=1000, description="dead letters to list, newest first")
]
DlqId = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]


class ReplayRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Either the DLQ ids to replay, or `all: true` (the oldest 1000)."""

    ids: Annotated[list[DlqId], msgspec.Meta(max_length=REPLAY_AT_MOST)] | None = None
    all: bool = False


def stream_spec(stream: str, settings: Settings) -> StreamSpec:
    """The stream named in the path, under the settings' prefix; 404 naming the known ones."""
    try:
        spec = streams.by_name(stream)
    except KeyError:
        known = [s.name for s in streams.ALL]
        raise ProblemError(
            HTTPStatus.NOT_FOUND, f"no stream {stream[:100]!r}; known: {', '.join(known)}",
            known=known,
        ) from None  # fmt: skip
    return spec.prefixed(settings.stream_prefix)


@get("/streams", summary="Every stream: length, dead letters, groups with pending, lag, age")
async def list_streams(
    redis: NamedDependency[Redis], settings: NamedDependency[Settings]
) -> StreamsView:
    return StreamsView(streams=await overview(redis, settings.stream_prefix))


@get("/streams/{stream:str}/dead-letters", summary="A stream's dead letters, newest first")
async def list_dead_letters(
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    stream: FromPath[str],
    count: Count = 100,
) -> DeadLettersView:
    spec = stream_spec(stream, settings)
    letters = await list_dead(redis, spec.name, count=count, newest_first=True)
    return DeadLettersView(
        stream=stream,
        total=int(await redis.xlen(spec.dlq)),
        dead_letters=[dead_letter_view(d) for d in letters],
    )


@post(
    "/streams/{stream:str}/dead-letters/replay",
    summary="Put dead letters back on their stream",
    status_code=HTTPStatus.OK,
    exception_handlers=BOUNDS_AS_422,
)
async def replay_dead_letters(
    redis: NamedDependency[Redis],
    settings: NamedDependency[Settings],
    stream: FromPath[str],
    data: JSONBody[ReplayRequest],
) -> ReplayedView:
    spec = stream_spec(stream, settings)
    if (data.ids is None) == (not data.all):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY, 'give either "ids" (a list of dlq ids) or "all": true'
        )
    if data.ids is not None:
        await _all_dead(redis, spec, data.ids)
    new_ids = await replay(redis, spec.name, ids=data.ids, count=REPLAY_AT_MOST)
    left = int(await redis.xlen(spec.dlq))
    return ReplayedView(stream=stream, entry_ids=new_ids, left=left)


async def _all_dead(redis: Redis, spec: StreamSpec, ids: list[str]) -> None:
    """404 naming the ids that are no dead letter of the stream (none is replayed then)."""
    if not ids:
        raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, '"ids" lists no dead letter')
    found = {d.dlq_id for d in await find_dead(redis, spec.name, ids)}
    if missing := [i for i in dict.fromkeys(ids) if i not in found]:
        raise ProblemError(
            HTTPStatus.NOT_FOUND,
            f"no dead letter {', '.join(missing[:20])} in {spec.dlq}; nothing replayed",
            missing=missing,
        )


router = Router(
    path="/", route_handlers=[list_streams, list_dead_letters, replay_dead_letters],
    tags=["operations"],
)  # fmt: skip
