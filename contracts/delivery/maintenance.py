"""Stream upkeep each service runs for the streams it consumes: safe trimming, and
removing the consumers that stopped processes left behind. (The streams' gauges are
exported by one process for all: contracts/delivery/stream_gauges.py.)"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from contracts.codec import as_text, entry_key
from contracts.streams import StreamSpec


async def safe_trim_id(redis: aioredis.Redis, spec: StreamSpec, *, now_ms: int) -> str | None:
    """The id below which every entry is past retention and read and acked by every group.

    None when nothing may be trimmed (a group in `spec.groups` does not exist yet).
    """
    groups: list[dict[str, Any]] = await redis.xinfo_groups(spec.name)
    by_name = {as_text(g["name"]): g for g in groups}
    bound = (now_ms - spec.retention_ms, 0)
    for wanted in spec.groups:
        group = by_name.get(wanted)
        if group is None:
            return None
        bound = min(bound, entry_key(as_text(group["last-delivered-id"])))
        if group["pending"]:
            summary = await redis.xpending(spec.name, wanted)
            bound = min(bound, entry_key(as_text(summary["min"])))
    return f"{bound[0]}-{bound[1]}"


async def trim(redis: aioredis.Redis, spec: StreamSpec, *, now_ms: int | None = None) -> int:
    """Trim what `safe_trim_id` allows; return the number of entries removed."""
    if not await redis.exists(spec.name):
        return 0
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    minid = await safe_trim_id(redis, spec, now_ms=now_ms)
    if minid is None:
        return 0
    return int(await redis.xtrim(spec.name, minid=minid, approximate=False))


# Atomically, so that no entry is read by a consumer between the check and the delete
# (XGROUP DELCONSUMER drops the consumer's pending entries, which XAUTOCLAIM needs).
# ARGV: group, min idle ms, only this consumer ('' for any), never this one.
_REMOVE_IDLE = """
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  local name = f['name']
  if (ARGV[3] == '' or name == ARGV[3]) and name ~= ARGV[4]
      and f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed
"""


async def remove_idle_consumers(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    *,
    idle_ms: int,
    only: str = "",
    keep: str = "",
) -> list[str]:
    """Delete the group's consumers idle at least `idle_ms` that have no pending entries
    (all of them, or `only` that one; never `keep`); return their names.

    A consumer with pending entries is never deleted: those entries wait for XAUTOCLAIM.
    A live consumer deleted while idle comes back with its next read.
    """
    try:
        names = await redis.eval(_REMOVE_IDLE, 1, stream, group, idle_ms, only, keep)
    except aioredis.ResponseError as exc:
        if "NOGROUP" in str(exc) or "no such key" in str(exc):
            return []
        raise
    return [as_text(n) for n in names]
