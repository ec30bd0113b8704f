"""The composition root every worker service shares.

`build_service(name, settings, register)` makes the broker, the Redis client,
the metrics registry and the delivery rules, lets the service `register` its
subscriptions, and returns a FastStream ASGI app serving `/healthz`, `/readyz`
and `/metrics`. Nothing connects until the app starts. Every worker also takes
part in exporting the streams' gauges, which one of them at a time does
(contracts/delivery/stream_gauges.py).

A worker starts whether or not its stores are up. FastStream answers the ASGI
lifespan before it starts the broker, and the broker's `start` here is
`Service.connect`: open the pool, create the consumer groups, start the
subscribers, each retried with backoff while PostgreSQL or Redis is away. So
the process never exits for a missing store (under `make run` one exit stops
every service); `/healthz` answers at once and `/readyz` says what it waits for
until it consumes. Hooks FastStream runs "after startup" (ingest's supervisor,
the minute closer) run once connected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from faststream.asgi import AsgiFastStream
from faststream.redis import RedisBroker
from prometheus_client import make_asgi_app
from redis.exceptions import RedisError

from contracts.delivery import Delivery, DeliveryMetrics
from contracts.delivery.idempotency import forget_applied_before
from contracts.delivery.maintenance import remove_idle_consumers, trim
from contracts.delivery.stream_gauges import stream_exporter
from contracts.runtime.db import create_pool, keep_session
from contracts.runtime.readiness import OK, health_routes, probe
from contracts.runtime.redis_auth import broker_security, redis_auth
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import Background, cancel_and_wait, every

log = logging.getLogger("conveyor.service")
UPKEEP_INTERVAL_S = 15.0
# Idempotency records outlive every stream's retention and the dead letters (7 days),
# so a replayed dead letter still finds the record of what was applied.
APPLIED_KEPT_DAYS = 8
FORGET_INTERVAL_S = 3600.0
# Upkeep deletes a consumer idle this many claim_idle_ms with nothing pending (a stopped
# process's; a live one polls every poll_ms, and would come back with its next read).
STALE_CONSUMER_CLAIMS = 10
# Connecting at start-up: first retry after this, doubling up to the cap.
CONNECT_BACKOFF_S = (0.5, 10.0)
REDIS_CONNECT_TIMEOUT_S = 2.0
# What a store that is away raises while connecting (anything else is a bug: it fails).
UNREACHABLE = (OSError, asyncpg.PostgresError, RedisError)


class WorkerBroker(RedisBroker):
    """FastStream's Redis broker whose `start` is the service's `connect` (see above)."""

    on_start: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        if self.on_start is None:
            await self.start_subscribers()
        else:
            await self.on_start()

    async def start_subscribers(self) -> None:
        await super().start()


@dataclass
class Service:
    name: str
    settings: Settings
    broker: WorkerBroker
    redis: aioredis.Redis
    metrics: DeliveryMetrics
    delivery: Delivery = field(init=False)
    connected: bool = False
    _waiting_for: dict[str, str] = field(default_factory=dict)
    _pool: asyncpg.Pool | None = None
    _background: list[Background] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.delivery = Delivery(self.settings, self.broker, self.redis, self.metrics, self.pool)
        self.broker.on_start = self.connect

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is used before start-up")
        return self._pool

    async def connect(self) -> None:
        """Pool, groups, subscribers, each retried until its store answers; then the loops."""
        await self._until("postgres", self._open_pool)
        await self._until("redis", self.delivery.ensure_groups)
        await self._until("redis", self._start_subscribers)
        self._tasks.append(asyncio.create_task(self._keep_up(), name=f"{self.name}:upkeep"))
        for work in self._background:
            await work.start()
        self.connected = True
        log.info("%s: connected to PostgreSQL and Redis; consuming", self.name)

    async def _open_pool(self) -> None:
        # The workers' SQL leaves no session state (keep_session): no reset query per release.
        self._pool = await create_pool(self.settings, reset=keep_session)

    async def _start_subscribers(self) -> None:
        try:
            await self.broker.start_subscribers()
        except UNREACHABLE:
            await self.broker.stop()  # so that the next attempt starts from nothing
            raise

    async def _until(self, store: str, step: Callable[[], Awaitable[None]]) -> None:
        delay, cap = CONNECT_BACKOFF_S
        while True:
            try:
                await step()
            except UNREACHABLE as exc:
                self._waiting_for = {store: f"{type(exc).__name__}: {exc}"}
                log.warning(
                    "%s: %s not reachable (%s); retrying in %.1fs", self.name, store, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)
            else:
                self._waiting_for = {}
                return

    async def readiness(self) -> Mapping[str, str]:
        """Each store's state ("ok" or the error) and whether the consumers run."""
        pg_check = (
            probe(self._pool.fetchval("SELECT 1"))
            if self._pool is not None
            else _state(self._waiting_for.get("postgres", "not connected yet"))
        )
        redis_state, pg_state = await asyncio.gather(probe(self.redis.ping()), pg_check)
        waiting = ", ".join(self._waiting_for) or "the other store"
        consumers = OK if self.connected else f"not started: waiting for {waiting}"
        return {"redis": redis_state, "postgres": pg_state, "consumers": consumers}

    def background(self, work: Background) -> None:
        """Run `work` beside the consumers: started once connected, stopped on shutdown
        before the broker stops (so that, say, leases are released for others at once)."""
        self._background.append(work)

    async def stop_background(self) -> None:
        for work in reversed(self._background):
            await work.stop()

    async def close(self) -> None:
        """After the broker stopped (nothing reads as this consumer any more)."""
        for task in self._tasks:
            await cancel_and_wait(task)
        if self.connected:
            await self._leave_groups()
        if self._pool is not None:
            await self._pool.close()
        await self.redis.aclose()

    async def _leave_groups(self) -> None:
        """Delete this process's consumer from each group where it holds nothing pending
        (what it holds stays with it, for XAUTOCLAIM to move to a live consumer)."""
        me = self.delivery.consumer
        try:
            for stream, group in self._pairs():
                await remove_idle_consumers(self.redis, stream, group, idle_ms=0, only=me)
        except UNREACHABLE as exc:
            log.info("%s: consumer %s left in its groups (%s)", self.name, me, exc)

    def _pairs(self) -> list[tuple[str, str]]:
        return sorted({(s.stream, s.group) for s in self.delivery.subscriptions})

    async def upkeep(self) -> None:
        """One round of the periodic upkeep (trimming, stale consumers)."""
        pairs = self._pairs()
        for spec in {s.stream: s.spec for s in self.delivery.subscriptions}.values():
            await trim(self.redis, spec)
        bound = STALE_CONSUMER_CLAIMS * self.settings.claim_idle_ms
        for stream, group in pairs:
            gone = await remove_idle_consumers(
                self.redis, stream, group, idle_ms=bound, keep=self.delivery.consumer
            )
            if gone:
                log.info("%s: removed idle consumers %s of %s/%s", self.name, gone, stream, group)

    async def _keep_up(self) -> None:
        forget_at = time.monotonic()

        async def step() -> None:
            nonlocal forget_at
            await self.upkeep()
            if self.delivery.subscriptions and time.monotonic() >= forget_at:
                forget_at = time.monotonic() + FORGET_INTERVAL_S
                await forget_applied_before(self.pool(), days=APPLIED_KEPT_DAYS)

        await every(UPKEEP_INTERVAL_S, step, what=f"{self.name}: stream upkeep", logger=log)


def build_service(
    name: str, settings: Settings, register: Callable[[Service], None]
) -> tuple[AsgiFastStream, Service]:
    broker = WorkerBroker(
        settings.redis_url,
        security=broker_security(settings),  # REDIS_URL's user and its password file, if set
        graceful_timeout=settings.shutdown_grace_s,
        # A plain logger: its records go through the root handler (contracts/runtime/logs.py),
        # not through the coloured handler FastStream would attach to its own.
        logger=logging.getLogger("faststream.redis"),
        log_level=logging.DEBUG,
    )
    service = Service(
        name=name,
        settings=settings,
        broker=broker,
        redis=aioredis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            **redis_auth(settings),  # REDIS_URL's user and its password file, if set
        ),
        metrics=DeliveryMetrics(),
    )
    register(service)
    # The streams' gauges, exported by one worker process of any service at a time.
    streams = stream_exporter(service.redis, settings, owner=f"{name}:{settings.consumer_name}")
    service.metrics.registry.register(streams)
    service.background(streams)
    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/metrics", make_asgi_app(service.metrics.registry)),
            *health_routes(service.readiness),
        ],
        on_shutdown=[service.stop_background],
        after_shutdown=[service.close],
    )
    return app, service


async def _state(text: str) -> str:
    return text
