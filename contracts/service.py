"""The composition root every worker service shares.

`build_service(name, settings, register)` makes the broker, the Redis client,
the metrics registry and the delivery rules, lets the service `register` its
subscriptions, and returns a FastStream ASGI app serving `/healthz` and
`/metrics`. Nothing connects until the app starts: the pool (retried with
backoff while PostgreSQL is down), the consumer groups, then the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from faststream.asgi import AsgiFastStream, make_ping_asgi
from faststream.redis import RedisBroker
from prometheus_client import make_asgi_app

from contracts.db import create_pool
from contracts.delivery import Delivery, DeliveryMetrics
from contracts.delivery.idempotency import forget_applied_before
from contracts.delivery.maintenance import observe, trim
from contracts.settings import Settings
from contracts.tasks import cancel_and_wait

log = logging.getLogger("conveyor.service")
UPKEEP_INTERVAL_S = 15.0
# Idempotency records outlive every stream's retention and the dead letters (7 days),
# so a replayed dead letter still finds the record of what was applied.
APPLIED_KEPT_DAYS = 8
FORGET_INTERVAL_S = 3600.0


@dataclass
class Service:
    name: str
    settings: Settings
    broker: RedisBroker
    redis: aioredis.Redis
    metrics: DeliveryMetrics
    delivery: Delivery = field(init=False)
    _pool: asyncpg.Pool | None = None
    _background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.delivery = Delivery(self.settings, self.broker, self.redis, self.metrics, self.pool)

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is used before start-up")
        return self._pool

    async def start(self) -> None:
        delay = 0.5
        while self._pool is None:
            try:
                self._pool = await create_pool(self.settings)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning(
                    "%s: PostgreSQL not reachable (%s); retrying in %.1fs", self.name, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        await self.delivery.ensure_groups()
        for loop in [self._keep_up, *self._background]:
            self._tasks.append(asyncio.create_task(loop(), name=f"{self.name}:{loop.__name__}"))

    def background(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop` from start-up to shutdown (it should never return)."""
        self._background.append(loop)

    async def close(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        if self._pool is not None:
            await self._pool.close()
        await self.redis.aclose()

    async def _keep_up(self) -> None:
        pairs = [(s.stream, s.group) for s in self.delivery.subscriptions]
        specs = {s.stream: s.spec for s in self.delivery.subscriptions}
        forget_at = time.monotonic()
        while True:
            try:
                await observe(self.redis, pairs, self.metrics)
                for spec in specs.values():
                    await trim(self.redis, spec)
                if specs and time.monotonic() >= forget_at:
                    forget_at = time.monotonic() + FORGET_INTERVAL_S
                    await forget_applied_before(self.pool(), days=APPLIED_KEPT_DAYS)
            except Exception as exc:
                log.warning("%s: stream upkeep failed: %s", self.name, exc)
            await asyncio.sleep(UPKEEP_INTERVAL_S)


def build_service(
    name: str, settings: Settings, register: Callable[[Service], None]
) -> tuple[AsgiFastStream, Service]:
    broker = RedisBroker(
        settings.redis_url, graceful_timeout=settings.shutdown_grace_s, log_level=logging.DEBUG
    )
    service = Service(
        name=name,
        settings=settings,
        broker=broker,
        redis=aioredis.from_url(settings.redis_url),
        metrics=DeliveryMetrics(),
    )
    register(service)
    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/metrics", make_asgi_app(service.metrics.registry)),
            ("/healthz", make_ping_asgi(broker, timeout=2.0)),
        ],
        on_startup=[service.start],
        after_shutdown=[service.close],
    )
    return app, service
