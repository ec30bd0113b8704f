"""Requests per key: a token bucket in Redis, shared by every gateway process.

`rate_limit_per_s` tokens a second, at most `rate_limit_burst` held; a request spends
one, and without one it is refused (429, `Retry-After`: when the bucket has one).

A process does not ask Redis on every request. It takes several tokens at once, a
*lease*, and spends them on the key's next requests until they are gone or LEASE_S has
passed; tokens left when a lease lapses are dropped (they were taken from the bucket,
so no process can spend them twice, and no key more than its bucket allows). The size
of a lease follows what the key spent here: it starts at one token, doubles while
leases are used up before they lapse (at most MAX_LEASE, and at most what the key may
spend in LEASE_S), and falls back to what was spent when one lapses with tokens left,
so a key whose requests are spread over several processes strands little. While one
request of a key asks Redis, the key's other requests in this process wait for that
answer instead of asking too. Below 1 / LEASE_S requests a second every request
asks Redis, as without leases.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from redis.asyncio import Redis

from contracts.runtime.settings import Settings

__all__ = ["LEASE_S", "MAX_LEASE", "Lease", "RateLimit"]

LEASE_S = 0.1
MAX_LEASE = 64

# A token bucket in one step: (0, n) if n tokens were taken (1 <= n <= ARGV[3], as many
# whole ones as there are), else (1, ms until there is one).
_BUCKET = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now_ms
tokens = math.min(burst, tokens + (now_ms - at) * rate / 1000)
local wait, taken = 0, 0
if tokens >= 1 then
  taken = math.min(want, math.floor(tokens))
  tokens = tokens - taken
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
if wait > 0 then return {1, wait} end
return {0, taken}
"""


class Lease:
    """The tokens of one key's bucket that this process holds."""

    __slots__ = ("asking", "most", "spent", "tokens", "until", "want")

    def __init__(self, most: int) -> None:
        self.most, self.want = most, 1
        self.tokens, self.spent, self.until = 0, 0, 0.0
        self.asking: asyncio.Future[int | None] | None = None

    def take(self, now: float) -> bool:
        """Spend a token held here, if one is left and the lease has not lapsed."""
        if self.tokens > 0 and now < self.until:
            self.tokens -= 1
            self.spent += 1
            return True
        return False

    def size(self) -> int:
        """How many tokens to ask for now that this lease is used up or lapsed."""
        if self.tokens > 0:  # lapsed with tokens left: as many as were spent
            self.want = max(1, self.spent)
        elif self.spent:  # used up in time: twice as many
            self.want = min(self.most, 2 * self.want)
        return self.want

    def renew(self, taken: int, now: float) -> None:
        """`taken` tokens from the bucket, one of them spent by the request that asked."""
        self.tokens, self.spent, self.until = taken - 1, 1, now + LEASE_S


class RateLimit:
    """The buckets of a process's keys, and the leases it holds on them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        most = int(settings.rate_limit_per_s * LEASE_S)
        self.most = max(1, min(MAX_LEASE, settings.rate_limit_burst, most))
        self.leases: defaultdict[str, Lease] = defaultdict(lambda: Lease(self.most))

    async def spend(self, key: str, redis: Redis) -> int:
        """Spend a token of `key`'s bucket: 0, or the milliseconds until it has one."""
        lease = self.leases[key]
        while not lease.take(time.monotonic()):
            if lease.asking is not None:  # another request of the key is asking Redis
                wait_ms = await asyncio.shield(lease.asking)
                if wait_ms:
                    return wait_ms
                continue
            return await self._ask(key, lease, redis)
        return 0

    async def _ask(self, key: str, lease: Lease, redis: Redis) -> int:
        asking = lease.asking = asyncio.get_running_loop().create_future()
        wait_ms: int | None = None  # the waiters ask again themselves (an error here)
        try:
            s = self.settings
            bucket = f"{s.stream_prefix}auth.rate:{key}"
            limited, answer = await redis.eval(
                _BUCKET, 1, bucket, s.rate_limit_per_s, s.rate_limit_burst, lease.size()
            )
            if limited:
                wait_ms = max(1, int(answer))
            else:
                lease.renew(int(answer), time.monotonic())
                wait_ms = 0
            return wait_ms
        finally:
            lease.asking = None
            asking.set_result(wait_ms)
