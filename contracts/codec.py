"""How a message sits in a stream entry, and how a producer appends one; stream entry
ids (`is_entry_id`, `entry_key`) and Redis replies as text (`as_text`).

An entry has one field, `__data__`, holding the message's JSON, so that
`redis-cli XRANGE <stream> - +` shows it as it is. (`__data__` is the field
FastStream's stream parser reads; a body with no FastStream envelope reaches
the handler unchanged. FastStream's own publisher would wrap the JSON in its
binary envelope, unreadable at redis-cli, so producers use `publish` here.)
"""

from __future__ import annotations

import hashlib
import re
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
    return as_text(entry_id)


# Append once per key: a retried publish (same Idempotency-Key, so same message ids)
# returns the entries of the first call instead of appending again. Several
# messages under one key are appended together or not at all.
_PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local ids = {}
for i = 2, #KEYS do
  ids[#ids + 1] = redis.call('XADD', KEYS[i], '*', ARGV[1], ARGV[i + 1])
end
local joined = table.concat(ids, ' ')
redis.call('SET', KEYS[1], joined, 'EX', ARGV[2])
return {1, joined}
"""


async def publish_once(
    redis: aioredis.Redis, stream: str, message: Message, *, ttl_s: int = 86_400
) -> tuple[bool, str]:
    """Append `message` unless its id was published in the last `ttl_s`; (appended, entry id)."""
    appended, ids = await publish_all_once(
        redis, f"{stream}.published:{message.id}", [(stream, message)], ttl_s=ttl_s
    )
    return appended, ids[0]


async def publish_all_once(
    redis: aioredis.Redis, key: str, entries: list[tuple[str, Message]], *, ttl_s: int = 86_400
) -> tuple[bool, list[str]]:
    """Append every (stream, message) at once, unless `key` was used in the last `ttl_s`;
    (appended, entry ids, in order)."""
    streams = [stream for stream, _ in entries]
    payloads = [encode(message) for _, message in entries]
    created, joined = await redis.eval(
        _PUBLISH_ONCE, 1 + len(entries), key, *streams, DATA_FIELD, ttl_s, *payloads
    )
    return bool(created), as_text(joined).split(" ")


def fingerprint(request: Any) -> str:
    """A digest of a request that equal requests share whatever their JSON spelling (key
    order, spacing, defaults written out or not): `request` is the decoded request."""
    canonical = msgspec.json.encode(msgspec.to_builtins(request), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


# Bind a key to the fingerprint of the first request that used it: (1) bound now,
# (0) bound before to the same fingerprint, (-1) bound before to another one.
_BIND = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
return -1
"""


async def bind_key(redis: aioredis.Redis, key: str, digest: str, *, ttl_s: int = 86_400) -> bool:
    """Bind `key` to `digest` for `ttl_s` unless it is bound already; False if it is bound
    to another digest (the key was used for another request)."""
    outcome = await redis.eval(_BIND, 1, key, digest, ttl_s)
    return int(outcome) >= 0


def as_text(value: object) -> str:
    """A Redis reply as text: redis-py answers bytes unless the client decodes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


_ENTRY_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_U64_MAX = 2**64 - 1


def is_entry_id(entry_id: str) -> bool:
    """A Redis stream entry id (`ms` or `ms-seq`, ASCII digits, each within 64 bits)."""
    found = _ENTRY_ID.fullmatch(entry_id)
    return found is not None and all(int(p or 0) <= _U64_MAX for p in found.groups())


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (`ms-seq`, or `ms` for `ms-0`) as (ms, seq), which orders as
    the stream does."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
