"""Dead letters: `<stream>.dlq` holds what a group gave up on, with the reason.

A dead-letter entry keeps the original JSON in `__data__` (so replay appends it
back unchanged) beside `stream`, `group`, `entry_id`, `reason`, `deliveries`,
`consumer` and `failed_at`. Moving an entry there and acknowledging it in its
group happen in one MULTI/EXEC, so it is never in both places or in neither.

Replay appends the original payload to its stream again and deletes the dead
letter, also in one MULTI/EXEC. The message keeps its id, so every group that
had already applied it finds it in `applied_messages` and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec
import redis.asyncio as aioredis

from contracts.codec import DATA_FIELD, as_text, entry_key, is_entry_id
from contracts.streams import DLQ_RETENTION_MS


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    dlq_id: str
    stream: str
    group: str
    entry_id: str
    reason: str
    deliveries: int
    consumer: str
    failed_at_ms: int
    data: str


async def dead_letter(
    redis: aioredis.Redis,
    *,
    stream: str,
    group: str,
    entry_id: str,
    data: bytes,
    reason: str,
    deliveries: int,
    consumer: str,
) -> str:
    """Move one pending entry to `<stream>.dlq` and acknowledge it; return the DLQ entry id."""
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(
            f"{stream}.dlq",
            {
                DATA_FIELD: data,
                b"stream": stream,
                b"group": group,
                b"entry_id": entry_id,
                b"reason": reason[:2000],
                b"deliveries": str(deliveries),
                b"consumer": consumer,
                b"failed_at_ms": str(now_ms),
            },
            minid=str(now_ms - DLQ_RETENTION_MS),
            approximate=True,
        )
        pipe.xack(stream, group, entry_id)
        dlq_id, _acked = await pipe.execute()
    return as_text(dlq_id)


async def list_dead(
    redis: aioredis.Redis, stream: str, *, count: int = 100, newest_first: bool = False
) -> list[DeadLetter]:
    """The oldest (or newest) `count` dead letters of `stream`."""
    dlq = f"{stream}.dlq"
    read = redis.xrevrange(dlq, count=count) if newest_first else redis.xrange(dlq, count=count)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await read  # type: ignore[assignment]
    return [_parse(entry_id, fields) for entry_id, fields in entries]


async def find_dead(redis: aioredis.Redis, stream: str, ids: Iterable[str]) -> list[DeadLetter]:
    """The dead letters of `stream` with these DLQ ids (`ms-seq`), oldest first; ids that
    name none (or are no full entry id) are left out."""
    # `ms` alone is no DLQ id: XRANGE would read it as every entry of that millisecond.
    wanted = sorted({i for i in ids if is_entry_id(i) and "-" in i}, key=entry_key)
    async with redis.pipeline(transaction=False) as pipe:
        for dlq_id in wanted:
            pipe.xrange(f"{stream}.dlq", min=dlq_id, max=dlq_id)
        found: list[list[tuple[bytes, dict[bytes, bytes]]]] = await pipe.execute()
    return [
        _parse(entry_id, fields)
        for dlq_id, entries in zip(wanted, found, strict=True)
        for entry_id, fields in entries
        if entry_id.decode() == dlq_id
    ]


async def replay(
    redis: aioredis.Redis, stream: str, *, ids: Iterable[str] | None = None, count: int = 1000
) -> list[str]:
    """Append dead letters back to `stream` (the oldest `count`, or the given DLQ ids);
    return the new entry ids."""
    if ids is None:
        letters = await list_dead(redis, stream, count=count)
    else:
        letters = await find_dead(redis, stream, ids)
    replayed: list[str] = []
    for letter in letters:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, {DATA_FIELD: letter.data.encode(), b"replayed_from": letter.dlq_id})
            pipe.xdel(f"{stream}.dlq", letter.dlq_id)
            new_id, _deleted = await pipe.execute()
        replayed.append(as_text(new_id))
    return replayed


def _parse(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def get(name: str) -> str:
        return fields.get(name.encode(), b"").decode(errors="replace")

    return DeadLetter(
        dlq_id=entry_id.decode(),
        stream=get("stream"),
        group=get("group"),
        entry_id=get("entry_id"),
        reason=get("reason"),
        deliveries=int(get("deliveries") or 0),
        consumer=get("consumer"),
        failed_at_ms=int(get("failed_at_ms") or 0),
        data=fields.get(DATA_FIELD, b"").decode(errors="replace"),
    )
