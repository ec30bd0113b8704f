"""The gateway's connections: built at start-up, handed to routes, closed at shutdown.

Start-up does no network I/O, so the gateway starts (and `/healthz` answers)
whether or not Redis and PostgreSQL are up; `/readyz` says which is missing:

- Redis: a `redis.asyncio.Redis` client connects on its first command and
  reconnects by itself. Connect timeout and retries are short, so a request
  that needs a Redis that is down fails within about a second (503) instead of
  hanging behind redis-py's default 10 retries.
- PostgreSQL: the asyncpg pool is created with `min_size=0` (asyncpg's lazy
  mode): creating it opens no connection, each `acquire()` connects when it has
  no idle connection, and a failed connect gives the slot back. A PostgreSQL
  that is down at boot or blips later fails only the requests made meanwhile,
  and the pool heals without a restart. (`Settings.db_pool_min` is therefore
  not used by the gateway; `db_pool_max` is.)

Routes get these as app-level dependencies, by parameter name:
`redis: NamedDependency[Redis]`, `pool: NamedDependency[asyncpg.Pool]`,
`settings: NamedDependency[Settings]`, `metrics_registry:
NamedDependency[CollectorRegistry]`, `feeds: NamedDependency[Feeds]` (the SSE
fan-out, gateway.feeds.fanout); elsewhere (a hook, a background task)
through `redis_of(app.state)`, `pool_of(app.state)` and the like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import cast

import asyncpg
import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from contracts.runtime.db import create_pool, keep_session
from contracts.runtime.redis_auth import redis_auth
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import Background
from gateway.feeds.fanout import Feeds
from gateway.frontdoor.health import check_dependencies, readiness_failure

__all__ = [
    "dependencies",
    "feeds_of",
    "lifespan",
    "metrics_registry_of",
    "pool_of",
    "redis_of",
    "settings_of",
]

log = logging.getLogger(__name__)

REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_READ_TIMEOUT_S = 5.0
REDIS_CONNECTIONS = 64
GATEWAY_POOL_MAX = 20  # PostgreSQL connections at least: every route reads or writes
REDIS_POOL_WAIT_S = 5.0
POOL_CLOSE_TIMEOUT_S = 5.0


def new_redis(settings: Settings) -> Redis:
    """A client that fails fast (then 503) when Redis is away; no I/O until first use."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=2)
    # A blocking pool: a burst of requests waits (up to REDIS_POOL_WAIT_S) for one of
    # REDIS_CONNECTIONS connections instead of failing with "Too many connections".
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_POOL_WAIT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        # A read waiting longer than this fails; a blocking XREAD must BLOCK for less.
        socket_timeout=REDIS_READ_TIMEOUT_S,
        retry=retry,
        **redis_auth(settings),  # REDIS_URL's user and its password file, if set
    )
    return Redis(connection_pool=pool)


async def new_pool(settings: Settings) -> asyncpg.Pool:
    """The shared pool factory in lazy mode (see the module docstring); no I/O.

    A connection goes back to the pool without asyncpg's reset query (a round trip on
    every release): the gateway's statements leave no session state behind (no SET,
    LISTEN, advisory lock or cursor outside a transaction); an open transaction is
    still rolled back."""
    size = max(settings.db_pool_max, GATEWAY_POOL_MAX)
    lazy = msgspec.structs.replace(settings, db_pool_min=0, db_pool_max=size)
    return await create_pool(lazy, reset=keep_session)


def lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        app.state.redis = new_redis(settings)
        app.state.pool = await new_pool(settings)
        app.state.feeds = Feeds(
            app.state.redis, settings.stream_prefix, metrics_registry_of(app.state)
        )
        try:
            await _log_readiness(app.state.redis, app.state.pool)
            yield
        finally:
            await app.state.feeds.close()
            await _close(app.state.pool, app.state.redis)

    return resources


def running(
    make: Callable[[State], Background],
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan step running background work made from the app's state (so after
    the resources' step), as the worker services run theirs (`Service.background`)."""

    @contextlib.asynccontextmanager
    async def step(app: Litestar) -> AsyncIterator[None]:
        work = make(app.state)
        await work.start()
        try:
            yield
        finally:
            await work.stop()

    return step


async def _log_readiness(redis: Redis, pool: asyncpg.Pool) -> None:
    """Say at start what is reachable (this also opens the first connections)."""
    checks = await check_dependencies(redis, pool)
    if readiness_failure(checks):
        log.warning("gateway starting while not ready: %s", checks)
    else:
        log.info("gateway ready: %s", checks)


async def _close(pool: asyncpg.Pool, redis: Redis) -> None:
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
    except TimeoutError:
        log.warning("PostgreSQL pool did not close in %ss; terminating", POOL_CLOSE_TIMEOUT_S)
        pool.terminate()
    await redis.aclose()


def redis_of(state: State) -> Redis:
    return cast(Redis, state.redis)


def pool_of(state: State) -> asyncpg.Pool:
    return cast(asyncpg.Pool, state.pool)


def settings_of(state: State) -> Settings:
    return cast(Settings, state.settings)


def feeds_of(state: State) -> Feeds:
    return cast(Feeds, state.feeds)


def metrics_registry_of(state: State) -> CollectorRegistry:
    return cast(CollectorRegistry, state.metrics_registry)


def dependencies() -> dict[str, Provide]:
    """The app-level dependencies named in the module docstring."""
    return {
        "redis": Provide(redis_of, sync_to_thread=False),
        "pool": Provide(pool_of, sync_to_thread=False),
        "settings": Provide(settings_of, sync_to_thread=False),
        "metrics_registry": Provide(metrics_registry_of, sync_to_thread=False),
        "feeds": Provide(feeds_of, sync_to_thread=False),
    }
