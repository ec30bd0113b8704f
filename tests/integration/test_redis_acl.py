"""The Redis users (deploy/redis/users.acl) on a redis-server run with deploy/redis/redis.conf.

The test renders the users file with deploy/redis/render-acl.sh from password files of its
own (and adds an admin user of the test's only, to read ACL LOG and CONFIG), starts
redis-server with it on a free port, and runs every service as its own user with the
production key names: an empty stream prefix, since the server is the test's alone.
Each service does its real work with no permission refused (ACL LOG stays empty, no
NOPERM in any log); what a user is not meant to do is refused; the default user is off;
AOF is on with a fsync every second, and nothing is evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import httpx_sse
import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError

from aggregator.app import create_app as create_aggregator
from contracts import codec, streams
from contracts.delivery import dead_letter
from contracts.messages import MinuteClosed, Point, RecordPoints, new_id, utcnow
from contracts.minutes import floor_minute
from contracts.runtime import cli
from contracts.runtime.db import DbConnection
from contracts.runtime.redis_auth import RedisPasswordFileError, redis_auth
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from gateway.catalog import demo as seed
from ingest.app import create_app as create_ingest
from mover.app import create_app as create_mover
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE, WRITE_KEY
from tests.support.outages import OwnRedis
from tests.support.probe import Tally
from tests.support.processes import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "redis"
USERS = ("gateway", "ingest", "mover", "aggregator", "operator")
WORKERS = ("ingest", "mover", "aggregator")
ADMIN = "acl-test-admin"  # the test's own, to read ACL LOG and CONFIG; not in deploy/
ADMIN_PASSWORD = "acl-test-admin-secret"
CONSOLE = {"X-Conveyor-Console": "1"}
MY_LIST = str(seed.MY_LIST)


@dataclasses.dataclass
class AclRedis:
    server: OwnRedis
    secrets: Path

    def password_file(self, user: str) -> Path:
        return self.secrets / f"redis_{user}_password"

    def client(self, user: str | None) -> aioredis.Redis:
        """A client as `user` (ADMIN: the test's admin; None: no AUTH at all)."""
        auth: dict[str, str] = {}
        if user == ADMIN:
            auth = {"username": ADMIN, "password": ADMIN_PASSWORD}
        elif user is not None:
            auth = {"username": user, "password": self.password_file(user).read_text().strip()}
        return aioredis.from_url(self.server.url, **auth)

    def settings(self, base: Settings, user: str) -> Settings:
        """`base` as the service would run in compose: REDIS_URL names its user, the
        password is in its secret file, the streams have their production names."""
        return msgspec.structs.replace(
            base,
            redis_url=f"redis://{user}@127.0.0.1:{self.server.port}/0",
            redis_password_file=str(self.password_file(user)),
            stream_prefix="",
            consumer_name=f"{base.consumer_name}-{user}",
        )

    async def refusals(self) -> list[str]:
        """What Redis refused since it started (ACL LOG), one line each."""
        async with self.client(ADMIN) as admin:
            entries: list[dict[Any, Any]] = await admin.acl_log(count=1000)
        return [
            " ".join(f"{k}={codec.as_text(entry.get(k, entry.get(k.encode())))}" for k in _SHOWN)
            for entry in entries
        ]


_SHOWN = ("username", "reason", "context", "object", "count")


async def render(template: Path, secrets_dir: Path, out: Path) -> tuple[int, str]:
    """Run deploy/redis/render-acl.sh: (exit code, what it printed on stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *("sh", str(DEPLOY / "render-acl.sh"), str(template), str(secrets_dir), str(out)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode()


async def answers(client: aioredis.Redis) -> bool:
    try:
        return bool(await client.ping())
    except (OSError, RedisError):
        return False


@pytest.fixture
async def acl_redis(tmp_path: Path) -> AsyncIterator[AclRedis]:
    """redis-server with deploy/redis/redis.conf and the users rendered with test passwords."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for user in USERS:
        (secrets_dir / f"redis_{user}_password").write_text(secrets.token_urlsafe(24) + "\n")
    users = tmp_path / "run" / "users.acl"
    code, err = await render(DEPLOY / "users.acl", secrets_dir, users)
    assert code == 0, err
    with users.open("a") as acl:
        acl.write(f"user {ADMIN} on >{ADMIN_PASSWORD} ~* &* +@all\n")
    data = tmp_path / "data"
    data.mkdir()
    server = OwnRedis(
        free_port(), data, config=DEPLOY / "redis.conf", args=("--aclfile", str(users))
    )
    await server.start()
    found = AclRedis(server, secrets_dir)
    try:
        async with found.client(ADMIN) as admin:
            await wait_until(lambda: answers(admin), what="redis-server with the ACL up")
        yield found
    finally:
        await server.stop()


class _Kept(logging.Handler):
    """Every record at WARNING or above, with its traceback, as text."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + "".join(traceback.format_exception(record.exc_info[1]))
        self.lines.append(text)


@pytest.fixture
def logged() -> Iterator[_Kept]:
    kept = _Kept()
    logging.getLogger().addHandler(kept)
    yield kept
    logging.getLogger().removeHandler(kept)


def refused_in(lines: Sequence[str]) -> list[str]:
    words = ("NOPERM", "permission", "can't run this command")
    return [line for line in lines if any(word in line for word in words)]


# --- Each service does its work as its own user --------------------------------------


async def first_event(
    client: httpx.AsyncClient,
    url: str,
    wanted: Callable[[httpx_sse.ServerSentEvent], bool],
    connected: asyncio.Event | None = None,
) -> httpx_sse.ServerSentEvent:
    """The first event of the SSE stream at `url` that is `wanted`."""
    async with httpx_sse.aconnect_sse(client, "GET", url) as source:
        assert source.response.status_code == 200, await source.response.aread()
        if connected is not None:
            connected.set()
        async for event in source.aiter_sse():
            if wanted(event):
                return event
    raise AssertionError(f"{url} ended before the event wanted")


async def job_status(client: httpx.AsyncClient, job_id: str, status: str) -> bool:
    response = await client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return bool(response.json()["status"] == status)


async def xlen(client: aioredis.Redis, key: str) -> int:
    return int(await client.xlen(key))


async def lost_and_sent_again(admin: aioredis.Redis) -> None:
    """As if Redis had lost the move's command: the gateway's outbox sends it again."""
    [(entry_id, _)] = await admin.xrange(streams.MOVER_COMMANDS.name)
    assert await admin.xdel(streams.MOVER_COMMANDS.name, entry_id) == 1

    async def sent_again() -> bool:
        return await xlen(admin, streams.MOVER_COMMANDS.name) == 1

    await wait_until(sent_again, timeout=20, what="the outbox to publish the move again")


async def console_session(url: str) -> None:
    """Sign in (a session key), use the session, sign out (the key deleted)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as browser:
        signed = await browser.post("/console/session", json={"key": WRITE_KEY}, headers=CONSOLE)
        assert signed.status_code == 200, signed.text
        assert (await browser.get("/jobs")).status_code == 200
        assert (await browser.post("/console/sign-out", headers=CONSOLE)).status_code == 204


async def batch_work(client: httpx.AsyncClient, admin: aioredis.Redis) -> None:
    """A producing batch (lease, emit, stop), a push, the batch feed, a closed minute."""
    assert (await client.put("/batches/b1", json={"rate": 50})).status_code == 201

    async def produced() -> bool:
        return int((await client.get("/batches/b1")).json()["points"]) > 0

    await wait_until(produced, timeout=20, what="points produced by ingest and stored")
    pushed = await client.post(
        "/batches/b1/points", json=[{"key": 1.5}], headers={"Idempotency-Key": "acl-push"}
    )
    assert pushed.status_code == 202, pushed.text
    feed = await asyncio.wait_for(
        first_event(client, "/batches/b1/events", lambda e: e.event == "PointsRecorded"), 20
    )
    assert json.loads(feed.data)["batch_id"] == "b1"
    assert (await client.delete("/batches/b1")).status_code == 200

    async def released() -> bool:
        return await admin.get("batches.lease:b1") is None

    await wait_until(released, timeout=20, what="ingest releasing the lease of b1")

    assert (await client.put("/batches/m1", json={"rate": 0})).status_code == 201
    minute = floor_minute(utcnow()) - timedelta(minutes=3)
    points = [Point(key=k, ts=minute + timedelta(seconds=5)) for k in (1.0, 2.0)]
    message = RecordPoints(
        id=new_id(), batch_id="m1", points=points, received_at=minute + timedelta(seconds=6)
    )
    await codec.publish(admin, streams.INGEST_POINTS.name, message)  # as a producer would

    async def closed() -> list[MinuteClosed]:
        decoder = streams.BATCHES_EVENTS.decoder()
        events = [decoder.decode(f[b"__data__"]) for _, f in await admin.xrange("batches.events")]
        return [e for e in events if isinstance(e, MinuteClosed) and e.batch_id == "m1"]

    [announced] = await wait_until(closed, timeout=30, what="m1's minute closed")
    assert (announced.minute, announced.count, announced.sum) == (minute, 2, 3.0)


async def poison_everywhere(client: httpx.AsyncClient, admin: aioredis.Redis) -> None:
    """An undecodable entry on every stream: each group dead-letters its own. Then the
    overview and a replay through the gateway (dead-lettered again by the mover)."""
    for spec in streams.ALL:
        await admin.xadd(spec.name, {codec.DATA_FIELD: b"not json"})

    async def all_dead() -> list[str]:
        missing = [s.dlq for s in streams.ALL if not await xlen(admin, s.dlq)]
        return [] if missing else ["all"]

    await wait_until(all_dead, timeout=30, what="a dead letter in every .dlq")
    overview = await client.get("/streams")
    assert overview.status_code == 200, overview.text
    assert {s["name"]: s["dead_letters"] for s in overview.json()["streams"]} == {
        s.name: 1 for s in streams.ALL
    }
    listed = await client.get("/streams/mover.commands/dead-letters")
    assert listed.status_code == 200, listed.text
    [before] = [d["dlq_id"] for d in listed.json()["dead_letters"]]
    replayed = await client.post("/streams/mover.commands/dead-letters/replay", json={"all": True})
    assert replayed.status_code == 200, replayed.text

    async def dead_again() -> list[str]:
        return [codec.as_text(i) for i, _ in await admin.xrange("mover.commands.dlq")]

    [after] = await wait_until(dead_again, timeout=20, what="the replayed entry dead again")
    assert after != before


async def test_every_service_does_its_work_as_its_own_user(
    acl_redis: AclRedis, settings: Settings, pool: asyncpg.Pool, logged: _Kept
) -> None:
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=200, my_list=100, liked=10, ignore=10)
    as_user = {user: acl_redis.settings(settings, user) for user in USERS}
    gateway = msgspec.structs.replace(as_user["gateway"], job_replan_after_s=1.0)
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(acl_redis.client(ADMIN))
        for create, user in ((create_aggregator, "aggregator"), (create_ingest, "ingest")):
            await stack.enter_async_context(create(as_user[user])[0])
        url = await stack.enter_async_context(uvicorn_serve(create_gateway(gateway)))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, timeout=10, headers=WRITE)
        )
        await console_session(url)
        ticket = (await client.post("/auth/tickets")).json()["ticket"]
        target = (await client.post("/collections", json={"name": "acl"})).json()["id"]
        move = {"source": MY_LIST, "target": target, "mode": "copy", "selection": [1, 2, 3]}

        connected = asyncio.Event()
        done = asyncio.create_task(
            first_event(
                client, f"/events?topics=jobs&ticket={ticket}",
                lambda e: e.event == "JobCompleted", connected,
            )
        )  # fmt: skip
        await asyncio.wait_for(connected.wait(), 10)
        accepted = await client.post("/moves", json=move, headers={"Idempotency-Key": "acl-1"})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()["id"]
        await lost_and_sent_again(admin)  # before any mover runs

        await stack.enter_async_context(create_mover(as_user["mover"])[0])
        await wait_until(lambda: job_status(client, job, "completed"), timeout=30, what="move")
        assert json.loads((await asyncio.wait_for(done, 20)).data)["job_id"] == job
        soon = (utcnow() + timedelta(seconds=1.5)).isoformat()  # the mover's scheduler starts it
        later = await client.post("/moves", json={**move, "selection": [4], "not_before": soon})
        scheduled = later.json()["id"]
        await wait_until(
            lambda: job_status(client, scheduled, "completed"), timeout=30, what="scheduled move"
        )

        await batch_work(client, admin)
        await poison_everywhere(client, admin)
    # Everything stopped (consumers left their groups, locks released): nothing refused.
    assert await acl_redis.refusals() == []
    assert refused_in(logged.lines) == []


async def test_the_retry_path_works_as_each_worker_on_each_of_its_streams(
    acl_redis: AclRedis, settings: Settings, logged: _Kept
) -> None:
    """A handler that fails (slowly: the lease renews while it runs) is retried through
    XAUTOCLAIM and XPENDING, its error kept in a key, and dead-lettered with that error."""

    async def fail(message: Tally, conn: DbConnection) -> None:
        await asyncio.sleep(0.5)  # longer than a third of claim_idle_ms: the lease renews
        raise RuntimeError("refused on purpose")

    def consumer_of(user: str) -> Callable[[Service], None]:
        def register(service: Service) -> None:
            for spec in streams.ALL:
                if user in spec.groups:  # its own streams, decoded as Tally here
                    probe = dataclasses.replace(spec, message_type=Tally)
                    service.delivery.consume(probe, user, fail)

        return register

    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(acl_redis.client(ADMIN))
        for user in WORKERS:
            app, _ = build_service(user, acl_redis.settings(settings, user), consumer_of(user))
            await stack.enter_async_context(app)
        for spec in streams.ALL:
            await codec.publish(admin, spec.name, Tally(id=new_id(), key=spec.name))

        async def reasons() -> dict[str, str]:
            found = {}
            for spec in streams.ALL:
                for _, fields in await admin.xrange(spec.dlq):
                    found[spec.name] = fields[b"reason"].decode()
            return found if len(found) == len(streams.ALL) else {}

        given_up = await wait_until(reasons, timeout=60, what="every stream's entry given up")
    assert set(given_up.values()) == {
        f"gave up after {settings.max_deliveries} deliveries; "
        "last error: RuntimeError: refused on purpose"
    }
    assert await acl_redis.refusals() == []
    assert refused_in(logged.lines) == []


# --- What each user may not do ---------------------------------------------------------

ENTRY = ("*", "__data__", "{}")
REFUSED: list[tuple[str, tuple[str, ...]]] = [
    ("gateway", ("XREADGROUP", "GROUP", "mover", "c", "STREAMS", "mover.commands", ">")),
    ("gateway", ("XACK", "mover.commands", "mover", "0-1")),
    ("gateway", ("XAUTOCLAIM", "mover.commands", "mover", "c", "0", "0")),
    ("gateway", ("XGROUP", "CREATE", "jobs.events", "spy", "0", "MKSTREAM")),
    ("gateway", ("FLUSHALL",)),
    ("gateway", ("CONFIG", "GET", "*")),
    ("gateway", ("KEYS", "*")),
    ("gateway", ("PUBLISH", "news", "hello")),
    ("gateway", ("GET", "batches.lease:b1")),  # ingest's producer lease
    ("gateway", ("GET", "mover.commands.errors:mover:0-1")),  # the mover's error keys
    ("mover", ("XADD", "ingest.points", *ENTRY)),
    ("mover", ("GET", "auth.sessions:abc")),
    ("mover", ("XRANGE", "ingest.points", "-", "+")),  # its length, yes; its entries, no
    ("mover", ("XRANGE", "jobs.events", "-", "+")),  # it appends there, reads nothing
    ("mover", ("XREADGROUP", "GROUP", "aggregator", "c", "STREAMS", "jobs.events", ">")),
    ("mover", ("HGETALL", "batches.running")),
    ("mover", ("FLUSHALL",)),
    ("ingest", ("XACK", "mover.commands", "mover", "0-1")),
    ("ingest", ("XREADGROUP", "GROUP", "aggregator", "c", "STREAMS", "points", ">")),
    ("ingest", ("HSET", "batches.running", "b9", "r9")),  # only the gateway admits
    ("ingest", ("SET", "idempotency.keys:k", "1")),
    ("ingest", ("XADD", "mover.commands", *ENTRY)),
    ("ingest", ("CONFIG", "SET", "appendonly", "no")),
    ("aggregator", ("XADD", "ingest.points", *ENTRY)),  # read only there
    ("aggregator", ("XACK", "ingest.points", "ingest", "0-1")),
    ("aggregator", ("XADD", "mover.commands", *ENTRY)),
    ("aggregator", ("DEL", "batches.running")),
    ("aggregator", ("GET", "auth.tickets:t")),
    ("operator", ("FLUSHALL",)),
    ("operator", ("SET", "auth.sessions:abc", "writer|read+write")),
    ("operator", ("XACK", "mover.commands", "mover", "0-1")),
    ("operator", ("XGROUP", "DESTROY", "mover.commands", "mover")),
    ("operator", ("DEL", "mover.commands")),
    ("operator", ("CONFIG", "SET", "appendonly", "no")),
    ("operator", ("KEYS", "*")),
    ("operator", ("ACL", "SETUSER", "operator", "+@all")),
]
ALLOWED: list[tuple[str, tuple[str, ...]]] = [
    ("gateway", ("XADD", "ingest.commands", *ENTRY)),
    ("gateway", ("XRANGE", "points", "-", "+")),
    ("mover", ("XLEN", "ingest.points")),  # the shared streams' gauges
    ("mover", ("XINFO", "GROUPS", "ingest.commands")),
    ("ingest", ("XADD", "points", *ENTRY)),
    ("aggregator", ("XRANGE", "ingest.points", "-", "+")),  # the minute closer's watermark
    ("operator", ("XRANGE", "mover.commands", "-", "+")),
    ("operator", ("HGETALL", "batches.running")),
    ("operator", ("INFO", "persistence")),
    ("operator", ("XADD", "mover.commands", *ENTRY)),  # a replay
]


async def test_each_user_is_refused_what_is_not_its_job(acl_redis: AclRedis) -> None:
    async with acl_redis.client(ADMIN) as admin:  # the streams exist, as in a running stack
        for spec in streams.ALL:
            with contextlib.suppress(aioredis.ResponseError):
                await admin.xgroup_create(spec.name, spec.groups[0], id="0", mkstream=True)
    not_refused, refused = [], []
    for user, command in REFUSED:
        async with acl_redis.client(user) as client:
            try:
                await client.execute_command(*command)
            except NoPermissionError:
                continue
            except RedisError as exc:
                not_refused.append(f"{user}: {' '.join(command)} failed otherwise: {exc}")
            else:
                not_refused.append(f"{user}: {' '.join(command)} was allowed")
    for user, command in ALLOWED:
        async with acl_redis.client(user) as client:
            try:
                await client.execute_command(*command)
            except RedisError as exc:
                refused.append(f"{user}: {' '.join(command)}: {exc}")
    assert not_refused == []
    assert refused == []


async def test_the_default_user_is_off_and_passwords_are_checked(acl_redis: AclRedis) -> None:
    url = acl_redis.server.url
    async with aioredis.from_url(url) as anonymous:
        with pytest.raises(AuthenticationError, match=r"NOAUTH|authenticated"):
            await anonymous.get("anything")
    for user, password in (("default", ""), ("default", "guess"), ("gateway", "not its own")):
        async with aioredis.from_url(url, username=user, password=password) as client:
            with pytest.raises(AuthenticationError, match=r"invalid username-password|NOAUTH"):
                await client.ping()
    async with acl_redis.client("gateway") as gateway:
        assert await gateway.ping()
    failed = {line.split()[0] for line in await acl_redis.refusals() if "reason=auth" in line}
    assert failed == {"username=default", "username=gateway"}


async def test_conveyor_streams_and_dlq_as_the_operator_and_the_gateway(
    acl_redis: AclRedis, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with acl_redis.client(ADMIN) as admin:  # a dead letter, as the ingest would leave it
        name = streams.INGEST_COMMANDS.name
        entry = await admin.xadd(name, {codec.DATA_FIELD: b"not json"})
        await admin.xgroup_create(name, "ingest", id="0")
        await admin.xreadgroup("ingest", "c1", {name: ">"})
        await dead_letter(
            admin, stream=name, group="ingest", entry_id=codec.as_text(entry),
            data=b"not json", reason="undecodable", deliveries=1, consumer="c1",
        )  # fmt: skip
    for user in ("operator", "gateway"):
        as_user = acl_redis.settings(settings, user)
        for argv in (
            ["wait", "--timeout", "5"],
            ["streams"],
            ["dlq", "list", "ingest.commands"],
            ["dlq", "replay", "ingest.commands"],
        ):
            args = cli.parser().parse_args(argv)
            assert await args.run(args, as_user) == 0, (user, argv, capsys.readouterr())
        out = capsys.readouterr().out
        assert "redis and postgres are reachable" in out
        assert "reason: undecodable" in out
        assert "replayed 1 dead letter(s)" in out
        async with acl_redis.client(ADMIN) as admin:  # dead again, for the next user
            [(again, _)] = await admin.xrevrange(name, count=1)
            await admin.xreadgroup("ingest", "c1", {name: ">"})
            await dead_letter(
                admin, stream=name, group="ingest", entry_id=codec.as_text(again),
                data=b"not json", reason="undecodable", deliveries=1, consumer="c1",
            )  # fmt: skip
    assert await acl_redis.refusals() == []


# --- Durability ------------------------------------------------------------------------


async def test_aof_every_second_noeviction_and_acknowledged_writes_survive_a_crash(
    acl_redis: AclRedis,
) -> None:
    async with acl_redis.client(ADMIN) as admin:
        config = await admin.config_get("*")
    assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
    assert config["maxmemory-policy"] == "noeviction"
    assert int(config["maxmemory"]) > 0
    assert config["save"] == ""
    async with acl_redis.client("operator") as operator:
        assert (await operator.info("persistence"))["aof_enabled"] == 1

    async with acl_redis.client("gateway") as gateway:
        entry = codec.as_text(await gateway.xadd("mover.commands", {codec.DATA_FIELD: b"{}"}))
    server = acl_redis.server
    assert server.process is not None
    server.process.kill()  # SIGKILL: no shutdown, no final fsync by Redis
    await server.process.wait()
    await server.start()
    async with acl_redis.client("operator") as operator:
        await wait_until(lambda: answers(operator), what="redis-server back")
        kept = await operator.xrange("mover.commands")
    assert [codec.as_text(i) for i, _ in kept] == [entry]


# --- The users file and the client side ----------------------------------------------


async def test_rendering_needs_every_password_and_the_template_alone_does_not_load(
    tmp_path: Path,
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for user in USERS[:-1]:  # no operator password
        (secrets_dir / f"redis_{user}_password").write_text("p")
    out = tmp_path / "users.acl"
    code, err = await render(DEPLOY / "users.acl", secrets_dir, out)
    assert code != 0
    assert "redis_operator_password" in err
    assert not out.exists()
    (secrets_dir / "redis_operator_password").write_text("\n")
    code, err = await render(DEPLOY / "users.acl", secrets_dir, out)
    assert (code, "is empty" in err, out.exists()) == (1, True, False)

    server = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(free_port()), "--bind", "127.0.0.1", "--save", ""),
        *("--dir", str(tmp_path)),
        *("--aclfile", str(DEPLOY / "users.acl")),
        stdout=asyncio.subprocess.PIPE,
    )
    said, _ = await asyncio.wait_for(server.communicate(), 10)
    assert server.returncode != 0
    assert b"ACL" in said


def test_every_service_has_a_user_without_blanket_rights() -> None:
    lines = [
        line.split()
        for line in (DEPLOY / "users.acl").read_text().splitlines()
        if line.startswith("user ")
    ]
    by_name = {words[1]: words[2:] for words in lines}
    assert set(by_name) == {"default", *USERS}
    assert by_name["default"][0] == "off"
    for user in USERS:
        rules = by_name[user]
        assert f"#{{{user}}}" in rules, f"{user}: its password placeholder"
        assert "resetchannels" in rules
        assert not {"+@all", "allcommands", "~*", "allkeys", "nopass", "&*"} & set(rules)


def test_the_client_credentials_come_from_the_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis_mover_password"
    secret.write_text("s3cret\n")
    base = Settings(redis_url="redis://mover@redis:6379/0")
    assert redis_auth(base) == {}
    given = msgspec.structs.replace(base, redis_password_file=str(secret))
    assert redis_auth(given) == {"password": "s3cret"}
    assert "s3cret" not in repr(given)
    for bad, says in (
        (msgspec.structs.replace(given, redis_password_file=str(tmp_path / "none")), "cannot"),
        (msgspec.structs.replace(given, redis_url="redis://mover:pw@redis:6379/0"), "once"),
    ):
        with pytest.raises(RedisPasswordFileError, match=says):
            redis_auth(bad)
    secret.write_text("\n")
    with pytest.raises(RedisPasswordFileError, match="is empty"):
        redis_auth(given)
