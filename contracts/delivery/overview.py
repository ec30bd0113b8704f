"""What an operator sees of the streams: per stream its length, dead letters and
retention; per consumer group its consumers, pending entries, lag and how long the
oldest unacknowledged entry has waited. One reader for `conveyor streams`,
`GET /streams` (gateway/operations/) and any collector that wants the same figures.

**Oldest pending age** is the age of the group's oldest pending entry, taken from
its id's timestamp (XPENDING's summary gives the smallest pending id), measured
against Redis's clock (`TIME`), so the host's clock does not matter. Not its idle
time (`XPENDING … IDLE` / the extended form): idle restarts at every delivery,
every `XAUTOCLAIM` and every lease renewal (`XCLAIM … JUSTID` while a handler
runs), so an entry that has failed for an hour, or is stuck in a handler that keeps
renewing it, looks a few seconds old. The id's time is when the entry was appended,
and so is how long it has waited to be acknowledged. (Every producer here appends
with `*`, so ids are append times; a replayed dead letter gets a new id, and its
age starts again at the replay.)

A stream that does not exist yet shows length 0 and no groups.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from contracts import streams
from contracts.codec import as_text, entry_key
from contracts.streams import StreamSpec


class GroupOverview(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    consumers: int
    pending: int
    # Entries not yet delivered to the group; None when Redis cannot tell (XINFO GROUPS
    # answers nil after deletions inside the group's unread range).
    lag: int | None
    last_delivered_id: str
    oldest_pending_id: str | None
    # How long the oldest pending entry has waited, from its id's time; None: no pending.
    oldest_pending_ms: int | None


class StreamOverview(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # as in contracts.streams (`mover.commands`)
    key: str  # the Redis key, with the settings' stream prefix
    length: int
    dead_letters: int  # XLEN <key>.dlq
    retention_ms: int
    groups: list[GroupOverview]


async def overview(
    redis: aioredis.Redis, prefix: str = "", *, now_ms: int | None = None
) -> list[StreamOverview]:
    """Every stream of `contracts.streams.ALL` under `prefix`, in that order.

    `now_ms` is the time ages are measured against (default: Redis's clock)."""
    if now_ms is None:
        seconds, micros = await redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
    return [await stream_overview(redis, spec, prefix, now_ms=now_ms) for spec in streams.ALL]


async def stream_overview(
    redis: aioredis.Redis, spec: StreamSpec, prefix: str, *, now_ms: int
) -> StreamOverview:
    key = spec.prefixed(prefix).name
    exists = bool(await redis.exists(key))
    return StreamOverview(
        name=spec.name,
        key=key,
        length=int(await redis.xlen(key)) if exists else 0,
        dead_letters=int(await redis.xlen(f"{key}.dlq")),
        retention_ms=spec.retention_ms,
        groups=await _groups(redis, key, now_ms=now_ms) if exists else [],
    )


async def _groups(redis: aioredis.Redis, key: str, *, now_ms: int) -> list[GroupOverview]:
    infos: list[dict[str, Any]] = await redis.xinfo_groups(key)
    return [await _group(redis, key, info, now_ms=now_ms) for info in infos]


async def _group(
    redis: aioredis.Redis, key: str, info: dict[str, Any], *, now_ms: int
) -> GroupOverview:
    name = as_text(info["name"])
    oldest: str | None = None
    if info["pending"]:
        summary = await redis.xpending(key, name)
        oldest = as_text(summary["min"]) if summary["min"] is not None else None
    lag = info.get("lag")
    return GroupOverview(
        name=name,
        consumers=int(info["consumers"]),
        pending=int(info["pending"]),
        lag=None if lag is None else int(lag),
        last_delivered_id=as_text(info["last-delivered-id"]),
        oldest_pending_id=oldest,
        oldest_pending_ms=None if oldest is None else max(0, now_ms - entry_key(oldest)[0]),
    )
