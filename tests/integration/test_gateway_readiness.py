"""`/readyz` follows Redis and PostgreSQL going away and coming back, without a restart.

Nothing here touches the shared services: Redis outages use a `redis-server` of
the test's own on a free port; PostgreSQL outages use a port nothing listens on,
or a small TCP forwarder to the shared PostgreSQL that the test opens late.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
from httpx import Response

from contracts.runtime.settings import Settings
from gateway.app import create_app
from tests.support.gateway import serve
from tests.support.outages import OwnRedis, with_port
from tests.support.processes import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


class Forwarder:
    """Forwards a local port to the shared PostgreSQL once `open()` is called."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()
        for task in self.pipes:
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        finally:
            dst.close()


def gateway(settings: Settings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return serve(create_app(settings))


async def wait_for_readyz(client: httpx.AsyncClient, status: int) -> Response:
    """Poll `/readyz` until it answers `status`; return that answer."""

    async def probe() -> Response | None:
        response = await client.get("/readyz")
        return response if response.status_code == status else None

    found = await wait_until(probe, timeout=20, what=f"/readyz to answer {status}")
    assert found is not None
    return found


def assert_down(response: Response, name: str, other: str) -> None:
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert str(body["detail"]).startswith(f"{name}: ")
    assert body["checks"][name] != "ok"
    assert body["checks"][other] == "ok"


async def test_readyz_follows_redis_down_and_back(settings: Settings, own_redis: OwnRedis) -> None:
    # Redis is not running yet: the gateway must start anyway.
    async with gateway(msgspec.structs.replace(settings, redis_url=own_redis.url)) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert_down(await client.get("/readyz"), "redis", "postgres")

        await own_redis.start()
        await wait_for_readyz(client, 200)

        await own_redis.stop()
        assert_down(await wait_for_readyz(client, 503), "redis", "postgres")

        await own_redis.start()
        ready = await wait_for_readyz(client, 200)
        assert ready.json()["checks"] == {"redis": "ok", "postgres": "ok"}


async def test_readyz_names_postgres_when_nothing_listens(settings: Settings) -> None:
    closed = with_port(settings.database_url, free_port())
    async with gateway(msgspec.structs.replace(settings, database_url=closed)) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert_down(await client.get("/readyz"), "postgres", "redis")


async def test_postgres_down_at_boot_heals_without_restart(settings: Settings) -> None:
    target = urlsplit(settings.database_url)
    forwarder = Forwarder(target.hostname or "127.0.0.1", target.port or 5432)
    late = with_port(settings.database_url, forwarder.port)
    try:
        async with gateway(msgspec.structs.replace(settings, database_url=late)) as client:
            assert_down(await client.get("/readyz"), "postgres", "redis")
            await forwarder.open()
            await wait_for_readyz(client, 200)
    finally:
        await forwarder.close()
