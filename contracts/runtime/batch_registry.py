"""Which batches run and who produces each: Redis state the gateway and ingest share.

Keys, under the stream prefix (so `redis-cli HGETALL batches.running` shows them):

- `batches.running`  HASH batch_id -> run_id of every admitted run. Its size is
  what the limit counts; it is the truth for "is this batch running".
- `batches.starts`   HASH batch_id -> the run's StartBatch JSON: the producer's
  parameters, so any ingest process can (re)start it.
- `batches.lease:<batch_id>`  STRING owner, with a TTL: the one producer of the batch.
- `batches.known`    SET of every batch id ever admitted (never trimmed, like the
  runs in PostgreSQL): a push to a batch not running is 409 if it is known, 404 if
  it never started, even before the aggregator has projected its first run.

Every change is one Lua script, atomic in Redis, so that it holds with any number
of gateway and ingest processes:

- **Admission** (`admit`): already running -> that run; `HLEN >= limit` -> refused
  with the running ids; else HSET both hashes and XADD StartBatch in one step.
  50 concurrent starts over several gateways admit exactly `limit`.
- **Stop** (`stop`): compare-and-delete of the run, plus XADD StopBatch.
- **Drop** (`drop`): compare-and-delete of a run whose StartBatch was dead-lettered
  (ingest then says so with BatchStopped; no StopBatch, which would say "stopped").
- **Push** (`push`): XADD RecordPoints only while the batch runs (and once per
  Idempotency-Key), so nothing enters a stopped batch.
- **One producer per batch** (`acquire`/`renew`/`release`): SET NX PX of the lease,
  renewed by its owner while the run is the admitted one.
- **Fencing** (`emit`): a producer's XADD succeeds only while it owns the lease
  AND its run is the admitted one. A paused or partitioned ex-owner whose lease
  expired, or a producer of a stopped run, can publish nothing: never two
  producers, and a stop takes effect on the very next emission.

Single Redis: the scripts touch several keys and are not Redis Cluster safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis

from contracts import streams
from contracts.codec import DATA_FIELD, as_text, encode
from contracts.messages import RecordPoints, StartBatch, StopBatch

_ADMIT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[6] ~= '0' and redis.call('EXISTS', KEYS[4]) == 1 then
  return {'replayed', current or ''}
end
if current then return {'running', current} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return {'full', redis.call('HKEYS', KEYS[1])}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('XADD', KEYS[3], '*', ARGV[4], ARGV[5])
if ARGV[6] ~= '0' then redis.call('SET', KEYS[4], '1', 'EX', ARGV[6]) end
return {'started', ARGV[2]}
"""

_STOP = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', ARGV[3], ARGV[4])
return 1
"""

_DROP = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

_PUSH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {0, ''} end
if ARGV[4] ~= '0' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {2, existing} end
end
local entry = redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[3])
if ARGV[4] ~= '0' then redis.call('SET', KEYS[3], entry, 'EX', ARGV[4]) end
return {1, entry}
"""

_EMIT = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
redis.call('XADD', KEYS[3], '*', ARGV[4], ARGV[5])
return 1
"""

_ACQUIRE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

IDEMPOTENCY_TTL_S = 86_400
# How BatchStopped.reason begins when a run ended because its command could not be
# applied (dead-lettered; ingest/lifecycle.py): the API shows such a run `failed`.
FAILED_REASON = "failed: "
# The largest |value| of a point (the gateway's gateway.frontdoor.fields.MAX_ABS_VALUE, which a
# unit test keeps equal): producers clamp their draws to it, so generated points fit
# the same bounds as pushed ones and every minute's sum stays representable.
MAX_ABS_VALUE = 1e15
log = logging.getLogger("conveyor.batches")
_START = msgspec.json.Decoder(StartBatch)


def decode_start(data: bytes | None) -> StartBatch | None:
    """A StartBatch from the starts hash (None if absent or unreadable)."""
    if data is None:
        return None
    try:
        return _START.decode(data)
    except msgspec.DecodeError:
        log.error("undecodable StartBatch in the starts hash: %r", data[:200])
        return None


@dataclass(frozen=True)
class Admission:
    """`started`; `running` (another run of the batch runs: `run_id`); `full` (the
    limit: `running` batch ids); `replayed` (a retried start: `run_id` is the batch's
    current run, or None if it has stopped since)."""

    outcome: Literal["started", "running", "full", "replayed"]
    run_id: str | None = None
    running: tuple[str, ...] = ()


class BatchRegistry:
    """The scripts above, bound to one Redis client and stream prefix."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.running_key = f"{prefix}batches.running"
        self.starts_key = f"{prefix}batches.starts"
        self.known_key = f"{prefix}batches.known"
        self._lease_prefix = f"{prefix}batches.lease:"
        self.commands = streams.INGEST_COMMANDS.prefixed(prefix).name
        self.points_in = streams.INGEST_POINTS.prefixed(prefix).name
        self._scripts = {
            name: redis.register_script(src)
            for name, src in {
                "admit": _ADMIT,
                "stop": _STOP,
                "drop": _DROP,
                "push": _PUSH,
                "emit": _EMIT,
                "acquire": _ACQUIRE,
                "renew": _RENEW,
                "release": _RELEASE,
            }.items()
        }

    def lease_key(self, batch_id: str) -> str:
        return f"{self._lease_prefix}{batch_id}"

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def admit(self, start: StartBatch, *, limit: int, once: bool = False) -> Admission:
        """Admit `start` unless the batch runs or the limit is reached; `once`: the run id
        comes from an Idempotency-Key, and a start admitted before is not admitted again."""
        seen = f"{self.running_key}.admitted:{start.id}"
        keys = [self.running_key, self.starts_key, self.commands, seen, self.known_key]
        ttl = IDEMPOTENCY_TTL_S if once else 0
        args = [start.batch_id, start.id, limit, DATA_FIELD, encode(start), ttl]
        outcome, detail = await self._run("admit", keys, args)
        kind = as_text(outcome)
        if kind == "full":
            return Admission("full", running=tuple(sorted(as_text(b) for b in detail)))
        if kind == "replayed":
            return Admission("replayed", as_text(detail) or None)
        return Admission("started" if kind == "started" else "running", as_text(detail))

    async def stop(self, stop: StopBatch) -> bool:
        """Remove `stop.run_id` if it is still the batch's run, and send the StopBatch."""
        keys = [self.running_key, self.starts_key, self.commands]
        args = [stop.batch_id, stop.run_id, DATA_FIELD, encode(stop)]
        return bool(await self._run("stop", keys, args))

    async def drop(self, batch_id: str, run_id: str) -> bool:
        """Remove `run_id` if it is still the batch's admitted run (no StopBatch sent)."""
        keys = [self.running_key, self.starts_key]
        return bool(await self._run("drop", keys, [batch_id, run_id]))

    async def run_of(self, batch_id: str) -> str | None:
        run = await self.redis.hget(self.running_key, batch_id)
        return None if run is None else as_text(run)

    async def running(self) -> dict[str, str]:
        found = await self.redis.hgetall(self.running_key)
        return {as_text(k): as_text(v) for k, v in found.items()}

    async def starts(self) -> dict[str, bytes]:
        found = await self.redis.hgetall(self.starts_key)
        return {as_text(k): v if isinstance(v, bytes) else v.encode() for k, v in found.items()}

    async def start_of(self, batch_id: str) -> StartBatch | None:
        """The StartBatch of the batch's running run, if it runs."""
        data = await self.redis.hget(self.starts_key, batch_id)
        return decode_start(data.encode() if isinstance(data, str) else data)

    async def known(self, batch_id: str) -> bool:
        """The batch was admitted at least once (it may have stopped since)."""
        return bool(await self.redis.sismember(self.known_key, batch_id))

    async def count(self) -> int:
        return int(await self.redis.hlen(self.running_key))

    async def push(self, message: RecordPoints, *, once: bool) -> tuple[int, str]:
        """XADD while the batch runs: (1, entry) added; (2, entry) a retry; (0, "") not running."""
        keys = [self.running_key, self.points_in, f"{self.points_in}.published:{message.id}"]
        ttl = IDEMPOTENCY_TTL_S if once else 0
        code, entry = await self._run(
            "push", keys, [message.batch_id, DATA_FIELD, encode(message), ttl]
        )
        return int(code), as_text(entry)

    async def emit(self, message: RecordPoints, *, run_id: str, owner: str) -> bool:
        """XADD a producer's points if it still owns the lease of the admitted run."""
        keys = [self.running_key, self.lease_key(message.batch_id), self.points_in]
        args = [message.batch_id, run_id, owner, DATA_FIELD, encode(message)]
        return bool(await self._run("emit", keys, args))

    async def acquire(self, batch_id: str, run_id: str, owner: str, ttl_ms: int) -> bool:
        keys = [self.running_key, self.lease_key(batch_id)]
        return bool(await self._run("acquire", keys, [batch_id, run_id, owner, ttl_ms]))

    async def renew(self, batch_id: str, run_id: str, owner: str, ttl_ms: int) -> bool:
        """Extend the lease; False when it is lost or the run was stopped (lease dropped)."""
        keys = [self.running_key, self.lease_key(batch_id)]
        return bool(await self._run("renew", keys, [batch_id, run_id, owner, ttl_ms]))

    async def release(self, batch_id: str, owner: str) -> None:
        await self._run("release", [self.lease_key(batch_id)], [owner])

    async def lease_owner(self, batch_id: str) -> str | None:
        owner = await self.redis.get(self.lease_key(batch_id))
        return None if owner is None else as_text(owner)
