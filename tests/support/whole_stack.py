"""The four services in a background thread, for tests that drive them synchronously
(hypothesis runs many examples against one stack; its tests are not coroutines).

The thread has its own event loop with the gateway served by uvicorn on a free port,
and mover, aggregator and ingest started in-process on a fresh schema and stream
prefix. Every log record at WARNING or above, from any logger, is kept in `records`
so a test can say "no error in any service's log".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import msgspec
import redis

from aggregator.app import create_app as create_aggregator
from contracts import streams
from contracts.runtime import migrations
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from gateway.catalog import demo as seed
from ingest.app import create_app as create_ingest
from mover.app import create_app as create_mover
from tests.support.http import uvicorn_serve


class _Keep(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(level=logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@dataclass
class WholeStack:
    settings: Settings
    url: str = ""
    records: list[logging.LogRecord] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)  # what tests made, for later calls
    pushed: dict[str, int] = field(default_factory=dict)  # batch id -> points accepted

    def dead_letters(self) -> dict[str, int]:
        """Entries in every dead-letter stream of this stack's prefix, by stream."""
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            found = {}
            for spec in streams.ALL:
                dlq = spec.prefixed(self.settings.stream_prefix).dlq
                n = int(client.xlen(dlq))  # type: ignore[arg-type]
                if n:
                    found[dlq] = n
            return found
        finally:
            client.close()

    def stream_length(self, spec: streams.StreamSpec) -> int:
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            return int(client.xlen(spec.prefixed(self.settings.stream_prefix).name))  # type: ignore[arg-type]
        finally:
            client.close()

    def pushed_points(self) -> int:
        """RecordPoints entries on ingest.points that came over HTTP (no producer)."""
        spec = streams.INGEST_POINTS
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            entries = client.xrange(spec.prefixed(self.settings.stream_prefix).name)
        finally:
            client.close()
        decoder = spec.decoder()
        messages = [decoder.decode(fields[b"__data__"]) for _id, fields in entries]  # type: ignore[union-attr]
        return sum(1 for m in messages if getattr(m, "producer", None) is None)

    def drained(self) -> bool:
        """Every group has read and acknowledged every entry of every stream."""
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            for spec in streams.ALL:
                name = spec.prefixed(self.settings.stream_prefix).name
                if not client.exists(name):
                    continue
                groups = client.xinfo_groups(name)  # type: ignore[no-untyped-call]
                if any(g["pending"] or g["lag"] for g in groups):
                    return False
            return True
        finally:
            client.close()

    def problems_logged(self) -> list[str]:
        """What the services logged at WARNING or above, one line each."""
        return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.records]


async def _fresh_schema(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{settings.db_schema}"')
        await conn.execute(f'SET search_path TO "{settings.db_schema}"')
        await migrations.apply(conn)
        await seed.seed(conn, companies=1_000, my_list=500, liked=10, ignore=50)
    finally:
        await conn.close()


async def _drop(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE')
    finally:
        await conn.close()
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{settings.stream_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _named(settings: Settings, name: str) -> Settings:
    return msgspec.structs.replace(settings, consumer_name=f"{settings.consumer_name}-{name}")


async def _serve(stack: WholeStack, ready: threading.Event, stop: asyncio.Event) -> None:
    s = stack.settings
    await _fresh_schema(s)
    try:
        async with contextlib.AsyncExitStack() as services:
            for name, create in (
                ("mover", create_mover),
                ("aggregator", create_aggregator),
                ("ingest", create_ingest),
            ):
                app, _service = create(_named(s, name))
                await services.enter_async_context(app)
            stack.url = await services.enter_async_context(uvicorn_serve(create_gateway(s)))
            ready.set()
            await stop.wait()
    finally:
        await _drop(s)


@contextlib.contextmanager
def whole_stack(settings: Settings, *, start_within_s: float = 60) -> Iterator[WholeStack]:
    """The stack, running until the block ends; a fresh schema and prefix are made here."""
    settings = msgspec.structs.replace(
        settings,
        db_schema=f"t_{uuid.uuid4().hex[:12]}",
        stream_prefix=f"t{uuid.uuid4().hex[:10]}.",
    )
    stack = WholeStack(settings)
    handler = _Keep(stack.records)
    logging.getLogger().addHandler(handler)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(_serve(stack, ready, stop))
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="whole-stack", daemon=True)
    thread.start()
    try:
        if not ready.wait(start_within_s) or failure:
            raise RuntimeError(f"the stack did not start: {failure!r}")
        yield stack
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        logging.getLogger().removeHandler(handler)
        if failure:
            raise failure[0]
