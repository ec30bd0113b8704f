"""The moves outbox: a move accepted but not planned is published again.

`POST /moves` appends the job's MoveCompanies (id = job id) and its JobQueued together,
then records the command in `accepted_moves` (the gateway is that table's only writer;
`jobs` is the aggregator's projection). If Redis loses them after the 202 (a crash
inside the AOF fsync window), nothing else would ever move the job on. So every
gateway runs `sweep` every third of `job_replan_after_s`: for each move accepted
longer ago than that and not planned yet as far as the projection shows, it publishes
again, under the same ids, the command when it is not waiting in `mover.commands`
(gone, or acknowledged while the job still shows queued), and the JobQueued when the
projection has no row for the job and its entry is gone from jobs.events. The mover
and the projection apply a message id once (the mover answers a duplicate by
publishing again what the first one caused), so a job whose events were lost heals
the same way. A move the projection shows planned, or over, is settled: left alone.

Several gateways: a Redis key per job (`SET NX EX bound`) lets one of them send it
per bound. A command still waiting (unread, or pending with a consumer that retries
it) is left alone, so a command that keeps failing is dead-lettered once, not once
per sweep; its dead letter fails the job (mover/commands.py).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import asyncpg
import msgspec
from litestar.datastructures import State
from redis.asyncio import Redis

from contracts import codec, streams
from contracts.codec import as_text, entry_key
from contracts.messages import JobQueued, MoveCompanies, derived_id
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import Forever, every
from gateway.jobs import sql

log = logging.getLogger("conveyor.gateway.outbox")
BATCH = 100
KEPT_S = 86_400


def job_queued(command: MoveCompanies) -> JobQueued:
    """The JobQueued published with a move's command: the same every time it is built."""
    return JobQueued(
        id=derived_id(command.job_id, "queued"), job_id=command.job_id, kind=command.mode,
        priority=command.priority, max_attempts=command.max_attempts,
        params={"selection": msgspec.to_builtins(command.selection)},
        not_before=command.not_before, source=command.source, target=command.target,
        at=command.at,
    )  # fmt: skip


def command_from(text: str) -> MoveCompanies | None:
    """The MoveCompanies recorded as `text`, or None if the mover could not read it (ids
    beyond 64 bits, refused at the edge since issue 8): sent, it would only be
    dead-lettered again, with no job to fail."""
    try:
        command = streams.MOVER_COMMANDS.decoder().decode(text)
    except msgspec.MsgspecError as exc:
        log.error("a recorded MoveCompanies the mover cannot read: %s (%s)", exc, text[:200])
        return None
    return command if isinstance(command, MoveCompanies) else None


async def sweep(*, pool: asyncpg.Pool, redis: Redis, settings: Settings) -> list[str]:
    """Publish again what Redis lost of the moves not planned in time; the job ids sent."""
    due = await sql.unsettled(conn=pool, older_than_s=settings.job_replan_after_s, limit=BATCH)
    return [row["job_id"] for row in due if await _heal(row, pool, redis, settings)]


async def _heal(row: asyncpg.Record, pool: asyncpg.Pool, redis: Redis, settings: Settings) -> bool:
    job_id = row["job_id"]
    commands = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    events = streams.JOBS_EVENTS.prefixed(settings.stream_prefix).name
    lost_command, lost_queued = await _lost(row, redis, settings, commands, events)
    if not (lost_command or lost_queued):
        return False
    lock = f"{commands}.replan:{job_id}"
    if not await redis.set(lock, b"1", nx=True, ex=math.ceil(settings.job_replan_after_s)):
        return False  # another gateway sent it within the bound
    command = command_from(row["command"])
    if command is None:
        return False
    sent = []
    if lost_queued:  # first, as POST /moves appends them: the job's row before its plan
        entry = await codec.publish(redis, events, job_queued(command))
        await sql.queued_again(conn=pool, job_id=job_id, queued_entry=entry)
        sent.append(f"JobQueued ({entry})")
    if lost_command:
        entry = await codec.publish(redis, commands, command)
        await redis.set(f"{commands}.replanned:{job_id}", entry, ex=KEPT_S)
        sent.append(f"MoveCompanies ({entry})")
    log.warning("job %s not planned after %ss: %s sent again",
                job_id, settings.job_replan_after_s, " and ".join(sent))  # fmt: skip
    return True


async def _lost(
    row: asyncpg.Record, redis: Redis, settings: Settings, commands: str, events: str
) -> tuple[bool, bool]:
    """Whether the move's command, and its JobQueued, are lost: not waiting in the stream,
    and (the JobQueued) not projected either."""
    known = await _known_entries(redis, settings, commands, row["job_id"])
    entry = row["queued_entry"]
    queued_lost = not row["projected"] and not await redis.xrange(
        events, min=entry, max=entry, count=1
    )
    return not await _waiting(redis, commands, known), queued_lost


async def _known_entries(redis: Redis, settings: Settings, stream: str, job_id: str) -> list[str]:
    """Where the job's command was appended: by POST /moves, and by this outbox."""
    accepted = await redis.get(f"{settings.stream_prefix}moves.accepted:{job_id}")
    again = await redis.get(f"{stream}.replanned:{job_id}")
    found = [as_text(accepted).split(" ")[0]] if accepted else []
    return found + ([as_text(again)] if again else [])


async def _waiting(redis: Redis, stream: str, entries: list[str]) -> bool:
    """Whether one of `entries` is in the stream and not acknowledged by the mover."""
    for entry in entries:
        if not await redis.xrange(stream, min=entry, max=entry, count=1):
            continue
        pending = await redis.xpending_range(stream, streams.MOVER, min=entry, max=entry, count=1)
        if pending:
            return True
        delivered = await _last_delivered(redis, stream)
        if delivered is None or entry_key(entry) > entry_key(delivered):
            return True
    return False


async def _last_delivered(redis: Redis, stream: str) -> str | None:
    groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    for group in groups:
        if as_text(group["name"]) == streams.MOVER:
            return as_text(group["last-delivered-id"])
    return None


def outbox(state: State, settings: Settings) -> Forever:
    """The sweep, every third of the bound, as background work of the app
    (started by `gateway.resources.running` after the resources)."""
    interval = max(0.1, settings.job_replan_after_s / 3)

    async def sweep_now() -> None:
        await sweep(pool=state.pool, redis=state.redis, settings=settings)

    async def sweeps() -> None:
        await every(interval, sweep_now, what="jobs outbox sweep", logger=log)

    return Forever(sweeps, name="gateway:jobs-outbox")
