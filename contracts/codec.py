"""How a message sits in a stream entry, and how a producer appends one.

An entry has one field, `__data__`, holding the message's JSON, so that
`redis-cli XRANGE <stream> - +` shows it as it is. (`__data__` is the field
FastStream's stream parser reads; a body with no FastStream envelope reaches
the handler unchanged. FastStream's own publisher would wrap the JSON in its
binary envelope, unreadable at redis-cli, so producers use `publish` here.)
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from contracts.messages import Message

DATA_FIELD = b"__data__"
_encoder = msgspec.json.Encoder()


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def entry_fields(message: Message) -> dict[bytes, bytes]:
    return {DATA_FIELD: encode(message)}


async def publish(redis: aioredis.Redis, stream: str, message: Message) -> str:
    """Append `message` to `stream`; return the entry id."""
    entry_id = await redis.xadd(stream, entry_fields(message))  # type: ignore[arg-type]
    return _text(entry_id)


# Append once per message id: a retried publish (same Idempotency-Key, same id)
# returns the first entry instead of appending a second one.
_PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local entry = redis.call('XADD', KEYS[2], '*', ARGV[1], ARGV[2])
redis.call('SET', KEYS[1], entry, 'EX', ARGV[3])
return {1, entry}
"""


async def publish_once(
    redis: aioredis.Redis, stream: str, message: Message, *, ttl_s: int = 86_400
) -> tuple[bool, str]:
    """Append `message` unless its id was published in the last `ttl_s`; (appended, entry id)."""
    key = f"{stream}.published:{message.id}"
    created, entry_id = await redis.eval(
        _PUBLISH_ONCE, 2, key, stream, DATA_FIELD, encode(message), ttl_s
    )
    return bool(created), _text(entry_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
