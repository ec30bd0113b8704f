"""The `conveyor` verbs on the shared stores: wait, migrate, streams, dlq.

Each verb is a `Command` named in the command table (`pyproject.toml`,
`[project.entry-points."conveyor.commands"]`); `contracts.runtime.cli` builds
the command line from that table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import msgspec
import redis.asyncio as aioredis

from contracts import streams
from contracts.delivery import list_dead, replay
from contracts.delivery.deadletter import find_dead
from contracts.delivery.overview import GroupOverview, overview
from contracts.runtime import migrations
from contracts.runtime.cli import Command, whole_number
from contracts.runtime.db import database_password
from contracts.runtime.redis_auth import redis_auth, redis_password
from contracts.runtime.settings import Settings
from contracts.streams import DAY_MS, HOUR_MS, MINUTE_MS

STREAM_NAMES = tuple(spec.name for spec in streams.ALL)
REPLAY_AT_MOST = 1000

HOW_TO_START = {
    "redis": 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
}


def _redis(settings: Settings) -> aioredis.Redis:
    """A client as REDIS_URL's user (its password from `redis_password_file`, if set)."""
    return aioredis.from_url(settings.redis_url, **redis_auth(settings))


async def _redis_ok(url: str, password: str | None = None) -> str | None:
    auth = {} if password is None else {"password": password}
    client = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=1, **auth)
    try:
        await client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()


async def _postgres_ok(url: str, password: str | None = None) -> str | None:
    try:
        conn = await asyncpg.connect(url, password=password, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def cmd_wait(args: argparse.Namespace, settings: Settings) -> int:
    deadline = time.monotonic() + args.timeout
    password = database_password(settings)
    redis_secret = redis_password(settings)
    checks: dict[str, tuple[str, Callable[[str], Awaitable[str | None]]]] = {
        "redis": (settings.redis_url, lambda url: _redis_ok(url, redis_secret)),
        "postgres": (settings.database_url, lambda url: _postgres_ok(url, password)),
    }
    while True:
        problems = {
            name: err
            for name, (url, check) in checks.items()
            if (err := await check(url)) is not None
        }
        if not problems:
            print("redis and postgres are reachable")
            return 0
        if time.monotonic() > deadline:
            for name, err in problems.items():
                url = settings.redacted()["redis_url" if name == "redis" else "database_url"]
                print(f"{name} is not reachable at {url}: {err}", file=sys.stderr)
                print(f"  start it with: {HOW_TO_START[name]}", file=sys.stderr)
                print("  or point REDIS_URL / DATABASE_URL at a running one", file=sys.stderr)
            return 1
        await asyncio.sleep(0.5)


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url, password=database_password(settings))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{settings.db_schema}"')
        await conn.execute(f'SET search_path TO "{settings.db_schema}"')
        applied = await migrations.apply(conn)
    finally:
        await conn.close()
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    print(f"schema {settings.db_schema!r} is up to date ({len(applied)} applied now)")
    return 0


async def cmd_streams(args: argparse.Namespace, settings: Settings) -> int:
    redis = _redis(settings)
    try:
        found = await overview(redis, settings.stream_prefix)
    finally:
        await redis.aclose()
    if args.json:
        sys.stdout.write(msgspec.json.encode(found).decode() + "\n")
        return 0
    rows = [_STREAMS_HEADER]
    for s in found:  # one row per group; a stream without groups has one row of its own
        stream = [s.key, str(s.length), str(s.dead_letters), _duration(s.retention_ms)]
        rows += [stream + _group_cells(g) for g in s.groups] or [stream + ["-"] * 5]
    _print_table(rows, left=(0, 4))
    return 0


def _print_table(rows: list[list[str]], *, left: tuple[int, ...]) -> None:
    """Columns as wide as their widest cell; numbers right-aligned, `left` ones left."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


_STREAMS_HEADER = ["STREAM", "LENGTH", "DEAD", "RETENTION", "GROUP", "CONSUMERS", "PENDING"]
_STREAMS_HEADER += ["LAG", "OLDEST PENDING"]


def _group_cells(g: GroupOverview) -> list[str]:
    lag = "?" if g.lag is None else str(g.lag)
    oldest = "-" if g.oldest_pending_ms is None else _duration(g.oldest_pending_ms)
    return [g.name, str(g.consumers), str(g.pending), lag, oldest]


def _duration(ms: int) -> str:
    """`850ms`, `12.3s`, `4m05s`, `2h03m`, `1d`, `3d02h`: short enough for a table cell."""
    if ms < 1000:
        return f"{ms}ms"
    if ms < MINUTE_MS:
        return f"{ms / 1000:.1f}s"
    unit, size, sub, sub_size = next(u for u in _UNITS if ms >= u[1])
    whole, rest = divmod(ms, size)
    return f"{whole}{unit}{rest // sub_size:02d}{sub}" if rest >= sub_size else f"{whole}{unit}"


_UNITS = (("d", DAY_MS, "h", HOUR_MS), ("h", HOUR_MS, "m", MINUTE_MS), ("m", MINUTE_MS, "s", 1000))


async def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    redis = _redis(settings)
    try:
        letters = await list_dead(redis, settings.stream_prefix + args.stream, count=args.count)
    finally:
        await redis.aclose()
    if args.json:
        sys.stdout.write(msgspec.json.encode(letters).decode() + "\n")
        return 0
    for d in letters:
        when = datetime.fromtimestamp(d.failed_at_ms / 1000, UTC).isoformat(timespec="seconds")
        print(f"{d.dlq_id}  {when}  group={d.group} entry={d.entry_id} deliveries={d.deliveries}")
        print(f"    reason: {d.reason}")
        print(f"    data:   {d.data[:300]}")
    print(f"{len(letters)} dead letter(s) in {settings.stream_prefix}{args.stream}.dlq")
    return 0


async def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    stream = settings.stream_prefix + args.stream
    redis = _redis(settings)
    try:
        if args.id:
            known = {d.dlq_id for d in await find_dead(redis, stream, args.id)}
            if missing := [i for i in args.id if i not in known]:
                listed = f"`conveyor dlq list {args.stream}` lists them"
                print(
                    f"no dead letter {', '.join(missing)} in {stream}.dlq ({listed}); "
                    "nothing replayed",
                    file=sys.stderr,
                )
                return 1
        new_ids = await replay(redis, stream, ids=args.id, count=REPLAY_AT_MOST)
    finally:
        await redis.aclose()
    print(f"replayed {len(new_ids)} dead letter(s) onto {settings.stream_prefix}{args.stream}")
    return 0


def _stream_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stream", choices=STREAM_NAMES, metavar="STREAM", help=f"one of {', '.join(STREAM_NAMES)}"
    )


def _wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _streams_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="the overview as JSON (as GET /streams)"
    )


def _dlq_arguments(parser: argparse.ArgumentParser) -> None:
    dlq = parser.add_subparsers(dest="dlq", required=True)
    ls = dlq.add_parser("list", help="list the dead letters of a stream")
    _stream_argument(ls)
    ls.add_argument("--count", type=whole_number(1), default=100, help="at most this many (100)")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    rp = dlq.add_parser("replay", help="append dead letters back onto their stream")
    _stream_argument(rp)
    rp.add_argument("--id", action="append", help="a DLQ entry id (repeatable); default all")


async def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    run = cmd_dlq_list if args.dlq == "list" else cmd_dlq_replay
    return await run(args, settings)


WAIT = Command("wait for Redis and PostgreSQL", _wait_arguments, cmd_wait)
MIGRATE = Command("apply the SQL migrations", _no_arguments, cmd_migrate)
STREAMS = Command(
    "streams, groups, pending, lag, oldest pending age", _streams_arguments, cmd_streams
)
DLQ = Command("dead letters", _dlq_arguments, cmd_dlq)
