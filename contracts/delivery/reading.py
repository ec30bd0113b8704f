"""How the delivery rules take entries from FastStream, and keep taken entries leased.

- `raw_entry` / `raw_entries` are the subscribers' parser, `keep_body` their decoder:
  the handler gets each entry's `__data__` bytes as they are, to be decoded once with
  the stream's msgspec Decoder. (FastStream's own stream parser JSON-parses every body
  looking for its envelope, its decoder parses it again, and its batch parser parses
  every body and dumps them all back to one JSON array: three passes over every point
  of a RecordPoints, for nothing.)
- `lease` keeps entries' idle time below `claim_idle_ms` while their handler runs, so
  a slow but live handler is not claimed away (`XCLAIM … JUSTID` does not count as a
  delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from faststream.message import StreamMessage
from faststream.redis.message import (
    FAKE_CONSUMER,
    RedisBatchStreamMessage,
    RedisStreamMessage,
)

from contracts.codec import DATA_FIELD
from contracts.runtime.tasks import cancel_and_wait


async def raw_entry(message: Mapping[str, Any]) -> RedisStreamMessage:
    """One entry (`message_ids` [id], `data` its fields); its body is the `__data__` bytes."""
    return RedisStreamMessage(
        raw_message=message,
        body=message["data"].get(DATA_FIELD, b""),
        consumer=FAKE_CONSUMER,
        group=None,
    )


async def raw_entries(message: Mapping[str, Any]) -> RedisBatchStreamMessage:
    """Entries read together (`message_ids`, `data` their fields, in stream order); the
    body is the list of their `__data__` bytes."""
    return RedisBatchStreamMessage(
        raw_message=message,
        body=[fields.get(DATA_FIELD, b"") for fields in message["data"]],
        consumer=FAKE_CONSUMER,
        group=None,
    )


async def keep_body(message: StreamMessage[Any]) -> Any:
    return message.body


@contextlib.asynccontextmanager
async def lease(
    redis: aioredis.Redis,
    *,
    stream: str,
    group: str,
    consumer: str,
    entry_ids: Sequence[str],
    claim_idle_ms: int,
) -> AsyncIterator[None]:
    """Reclaim `entry_ids` for `consumer` (JUSTID) every third of `claim_idle_ms` until exit."""
    interval = claim_idle_ms / 3000
    ids: list[Any] = list(entry_ids)

    async def renew() -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await redis.xclaim(stream, group, consumer, 0, ids, justid=True)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        await cancel_and_wait(task)
