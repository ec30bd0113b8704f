"""The job row is an outbox: a move accepted but not planned is sent to the mover again.

`POST /moves` appends the job's MoveCompanies (id = job id) and writes its `queued`
row. If Redis loses the command after the 202 (a crash inside the AOF fsync window),
nothing else would ever move that row on. So every gateway runs `sweep` every third
of `job_replan_after_s`: for each move still `queued` after that bound whose command
is not waiting in `mover.commands` (gone, or acknowledged by the mover while the row
still says queued), it publishes the command again under the same id. The mover
applies a message id once, and answers a duplicate by publishing again what the
first one caused, so a job whose events were lost heals the same way.

Several gateways: a Redis key per job (`SET NX EX bound`) lets one of them send it
per bound. A command still waiting (unread, or pending with a consumer that retries
it) is left alone, so a command that keeps failing is dead-lettered once, not once
per sweep; its dead letter fails the job (mover/handlers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar
from litestar.datastructures import State
from redis.asyncio import Redis

from contracts import codec, streams
from contracts.messages import MoveCompanies, Selection
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import cancel_and_wait
from gateway.jobs import sql

log = logging.getLogger("conveyor.gateway.outbox")
BATCH = 100
KEPT_S = 86_400


def move_command(row: asyncpg.Record) -> MoveCompanies | None:
    """The MoveCompanies that POST /moves sent for this job row (its id is the job id);
    None for a row that does not hold one (not written by POST /moves)."""
    params = msgspec.json.decode(row["params"]) if isinstance(row["params"], str) else row["params"]
    if row["source"] is None or row["target"] is None or "selection" not in params:
        return None
    return MoveCompanies(
        id=row["id"], job_id=row["id"], source=str(row["source"]), target=str(row["target"]),
        mode=row["kind"], selection=msgspec.convert(params["selection"], Selection),
        priority=row["priority"], max_attempts=row["max_attempts"], not_before=row["not_before"],
    )  # fmt: skip


async def sweep(*, pool: asyncpg.Pool, redis: Redis, settings: Settings) -> list[str]:
    """Send again the commands of stale queued moves; the job ids sent."""
    stream = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    stale = await sql.stale_queued(conn=pool, older_than_s=settings.job_replan_after_s, limit=BATCH)
    sent = []
    for row in stale:
        job_id = row["id"]
        if await _waiting(redis, stream, await _known_entries(redis, settings, stream, job_id)):
            continue
        lock = f"{stream}.replan:{job_id}"
        if not await redis.set(lock, b"1", nx=True, ex=math.ceil(settings.job_replan_after_s)):
            continue  # another gateway sent it within the bound
        command = move_command(row)
        if command is None or not _readable(command):
            continue
        entry = await codec.publish(redis, stream, command)
        await redis.set(f"{stream}.replanned:{job_id}", entry, ex=KEPT_S)
        log.warning("job %s still queued after %ss: MoveCompanies sent again (%s)",
                    job_id, settings.job_replan_after_s, entry)  # fmt: skip
        sent.append(job_id)
    return sent


def _readable(command: MoveCompanies) -> bool:
    """Whether the mover can decode it (a command it cannot read would only be dead-lettered
    again, with no job to fail: ids beyond 64 bits, which the edge refuses since issue 8)."""
    try:
        streams.MOVER_COMMANDS.decoder().decode(codec.encode(command))
    except msgspec.MsgspecError as exc:
        log.error("job %s cannot be sent again: the mover cannot read it (%s)", command.id, exc)
        return False
    return True


async def _known_entries(redis: Redis, settings: Settings, stream: str, job_id: str) -> list[str]:
    """Where the job's command was appended: by POST /moves, and by this outbox."""
    accepted = await redis.get(f"{settings.stream_prefix}moves.accepted:{job_id}")
    again = await redis.get(f"{stream}.replanned:{job_id}")
    found = [_text(accepted).split(" ")[0]] if accepted else []
    return found + ([_text(again)] if again else [])


async def _waiting(redis: Redis, stream: str, entries: list[str]) -> bool:
    """Whether one of `entries` is in the stream and not acknowledged by the mover."""
    for entry in entries:
        if not await redis.xrange(stream, min=entry, max=entry, count=1):
            continue
        pending = await redis.xpending_range(stream, streams.MOVER, min=entry, max=entry, count=1)
        if pending:
            return True
        delivered = await _last_delivered(redis, stream)
        if delivered is None or _id(entry) > _id(delivered):
            return True
    return False


async def _last_delivered(redis: Redis, stream: str) -> str | None:
    groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    for group in groups:
        if _text(group["name"]) == streams.MOVER:
            return _text(group["last-delivered-id"])
    return None


async def _run(state: State, settings: Settings) -> None:
    interval = max(0.1, settings.job_replan_after_s / 3)
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep(pool=state.pool, redis=state.redis, settings=settings)
        except Exception as exc:  # Redis or PostgreSQL away: the next sweep tries again
            log.warning("jobs outbox sweep failed: %s", exc)


def outbox(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan step: the sweep runs from start-up to shutdown (after the resources')."""

    @contextlib.asynccontextmanager
    async def running(app: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(_run(app.state, settings), name="gateway:jobs-outbox")
        try:
            yield
        finally:
            await cancel_and_wait(task)

    return running


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
