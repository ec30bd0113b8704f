"""PostgreSQL roles (README "PostgreSQL roles"): each service does its work as its own
role, and nothing else; the migration role owns the schema and migrates.

The roles are made by the real init script (deploy/postgres/init/10-conveyor-roles.sh,
what the postgres container runs) with passwords from files. Roles are cluster-wide, so
each test's roles carry a suffix of their own (CONVEYOR_ROLE_SUFFIX, which the script
sets on the migration role as `conveyor.role_suffix` and migration 0010 reads): a run
never meets another run's roles, and every role is dropped at the end, failed or not.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from aggregator.app import create_app as create_aggregator
from contracts import streams
from contracts.delivery.idempotency import forget_applied_before
from contracts.messages import utcnow
from contracts.minutes import floor_minute
from contracts.runtime import migrations
from contracts.runtime.commands import cmd_migrate
from contracts.runtime.db import PasswordFileError, connect, create_pool, database_password
from contracts.runtime.settings import Settings
from gateway.app import create_app as create_gateway
from gateway.catalog import demo as seed
from ingest.app import create_app as create_ingest
from mover.app import create_app as create_mover
from tests.support.gateway import serve
from tests.support.keys import API_KEYS
from tests.support.services import ServiceUrls
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

INIT = Path(__file__).parents[2] / "deploy" / "postgres" / "init" / "10-conveyor-roles.sh"
SERVICES = ("gateway", "ingest", "mover", "aggregator")
MY_LIST, LIKED = str(seed.MY_LIST), str(seed.LIKED)

# What each runtime role may do, table by table (from each service's SQL). Every table
# of the schema is here or in OPERATOR_ONLY: a migration that adds a table must say who
# may touch it, or this test fails.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "gateway": {
        "companies": {"SELECT"},
        "collections": {"SELECT", "INSERT", "UPDATE"},
        "memberships": {"SELECT"},
        "jobs": {"SELECT"},
        "job_events": {"SELECT"},
        "accepted_moves": {"SELECT", "INSERT", "UPDATE"},
        "batch_runs": {"SELECT"},
        "minute_aggregates": {"SELECT"},
        "points": {"SELECT"},
    },
    "ingest": {
        "applied_messages": {"SELECT", "INSERT", "DELETE"},
        "points": {"INSERT"},
    },
    "mover": {
        "applied_messages": {"SELECT", "INSERT", "DELETE"},
        "move_jobs": {"SELECT", "INSERT", "UPDATE"},
        "move_pages": {"SELECT", "INSERT", "UPDATE"},
        "move_progress": {"SELECT", "INSERT", "DELETE"},
        "memberships": {"SELECT", "INSERT", "DELETE"},
        "collections": {"SELECT", "DELETE"},
    },
    "aggregator": {
        "applied_messages": {"SELECT", "INSERT", "DELETE"},
        "jobs": {"SELECT", "INSERT", "UPDATE"},
        "job_events": {"SELECT", "INSERT"},
        "batch_runs": {"SELECT", "INSERT", "UPDATE"},
        "minute_aggregates": {"SELECT", "INSERT", "UPDATE"},
    },
}
OPERATOR_ONLY = {"schema_migrations", "runtime_grants"}

# What a role must not do (each statement would succeed with the privilege).
FORBIDDEN: dict[str, list[str]] = {
    "gateway": [
        "INSERT INTO jobs (id) SELECT 'x' WHERE false",
        "UPDATE jobs SET status = status WHERE false",
        "INSERT INTO memberships (collection_id) SELECT NULL WHERE false",
        "DELETE FROM memberships WHERE false",
        "UPDATE move_jobs SET status = status WHERE false",
        "SELECT count(*) FROM applied_messages",
    ],
    "mover": [
        "INSERT INTO jobs (id) SELECT 'x' WHERE false",
        "UPDATE jobs SET status = status WHERE false",
        "INSERT INTO minute_aggregates (batch_id) SELECT 'x' WHERE false",
        "UPDATE minute_aggregates SET closed = true WHERE false",
        "SELECT count(*) FROM accepted_moves",
    ],
    "aggregator": [
        "INSERT INTO memberships (collection_id) SELECT NULL WHERE false",
        "DELETE FROM memberships WHERE false",
        "UPDATE move_jobs SET status = status WHERE false",
        "INSERT INTO move_jobs (job_id) SELECT 'x' WHERE false",
        "UPDATE collections SET name = name WHERE false",
    ],
    "ingest": [
        "SELECT count(*) FROM accepted_moves",
        "SELECT count(*) FROM points",
        "INSERT INTO jobs (id) SELECT 'x' WHERE false",
        "DELETE FROM points WHERE false",
    ],
}
# ... and what none of them may do: change the schema, or read what is the operator's.
FORBIDDEN_TO_ALL = [
    "DROP TABLE jobs",
    "ALTER TABLE jobs ADD COLUMN intruder int",
    "CREATE TABLE intruder (a int)",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "TRUNCATE applied_messages",
    "CREATE INDEX intruder ON points (key)",
    "SELECT count(*) FROM runtime_grants",
    "SELECT count(*) FROM schema_migrations",
    "SELECT conveyor_grant()",
]


@dataclass
class Roles:
    """The roles of one test: names, password files, settings to connect as each."""

    base: Settings
    suffix: str
    secrets_dir: Path
    superuser_url: str

    def name(self, service: str) -> str:
        return f"conveyor_{service}{self.suffix}"

    def settings(self, service: str) -> Settings:
        """`service`'s settings: its role in DATABASE_URL, its password file."""
        url = urlsplit(self.superuser_url)
        netloc = f"{self.name(service)}@{url.hostname}:{url.port or 5432}"
        return msgspec.structs.replace(
            self.base,
            database_url=url._replace(netloc=netloc).geturl(),
            database_password_file=str(self.secrets_dir / f"postgres_{service}_password"),
            consumer_name=f"{self.base.consumer_name}-{service}",
        )

    def password(self, service: str) -> str:
        return (self.secrets_dir / f"postgres_{service}_password").read_text().rstrip("\n")


def _init_env(database_url: str, secrets_dir: Path, schema: str, suffix: str) -> dict[str, str]:
    """The environment the postgres image gives the init script, pointed at `database_url`."""
    url = urlsplit(database_url)
    env = dict(os.environ)
    env.update(
        PGHOST=url.hostname or "127.0.0.1",
        PGPORT=str(url.port or 5432),
        POSTGRES_USER=url.username or "postgres",
        POSTGRES_DB=url.path.lstrip("/") or "postgres",
        CONVEYOR_SECRETS_DIR=str(secrets_dir),
        CONVEYOR_DB_SCHEMA=schema,
        CONVEYOR_ROLE_SUFFIX=suffix,
    )
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def run_init(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INIT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def _drop_roles(database_url: str, schema: str, names: list[str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for name in names:
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
                # Whatever it still owns goes to the superuser (nothing is dropped by
                # mistake); then its privileges (CREATE on the database) and the role.
                await conn.execute(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
                await conn.execute(f'DROP OWNED BY "{name}"')
                await conn.execute(f'DROP ROLE "{name}"')
    finally:
        await conn.close()


@pytest.fixture
async def roles(urls: ServiceUrls, stream_prefix: str, tmp_path: Path) -> AsyncIterator[Roles]:
    """The five roles made by the init script, in a schema of their own (not migrated)."""
    suffix, schema = f"_t{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:12]}"
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for service in ("migrate", *SERVICES):  # quotes, `$` and spaces: quoted everywhere
        password = f"{secrets.token_urlsafe(18)} it's $HOME"
        (secrets_dir / f"postgres_{service}_password").write_text(password + "\n")
    base = Settings(
        redis_url=urls.redis_url, db_schema=schema, stream_prefix=stream_prefix,
        claim_idle_ms=1_000, max_deliveries=3, shutdown_grace_s=5.0, poll_ms=100,
        db_pool_max=5, api_keys=API_KEYS, job_replan_after_s=1.0,
    )  # fmt: skip
    made = Roles(base, suffix, secrets_dir, urls.database_url)
    names = [made.name(s) for s in ("migrate", *SERVICES)]
    try:
        done = run_init(_init_env(urls.database_url, secrets_dir, schema, suffix))
        assert done.returncode == 0, done.stderr
        yield made
    finally:
        await _drop_roles(urls.database_url, schema, names)
        client = aioredis.from_url(urls.redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{stream_prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture
async def migrated(roles: Roles) -> Roles:
    """`conveyor migrate` run as the migration role; the demo data loaded as it too."""
    settings = roles.settings("migrate")
    assert await cmd_migrate(argparse.Namespace(), settings) == 0
    conn = await connect(settings)
    try:
        await seed.seed(conn, companies=1_000, my_list=500, liked=10, ignore=50)
        await seed.slow_db(conn, on=True, delay_ms=1)  # the demo trigger fires for the mover
    finally:
        await conn.close()
    return roles


async def as_migrate(roles: Roles, query: str, *args: Any) -> Any:
    """One value read as the migration role (which may read everything)."""
    conn = await connect(roles.settings("migrate"))
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def as_superuser(urls: ServiceUrls, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(urls.database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


# --- the stores: who owns what, who may do what --------------------------------------


def scram_matches(verifier: str, password: str) -> bool:
    """Whether PostgreSQL's SCRAM-SHA-256 verifier (pg_authid.rolpassword) is `password`'s."""
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key, _, server_key = keys.partition(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client = hmac.new(salted, b"Client Key", "sha256").digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and (
        base64.b64encode(hashlib.sha256(client).digest()).decode(),
        base64.b64encode(server).decode(),
    ) == (stored_key, server_key)


async def test_the_init_script_makes_login_roles_with_the_files_passwords_and_nothing_more(
    roles: Roles, urls: ServiceUrls
) -> None:
    conn = await asyncpg.connect(urls.database_url)
    try:
        for service in ("migrate", *SERVICES):
            row = await conn.fetchrow(
                """SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls,
                          rolpassword FROM pg_authid WHERE rolname = $1""",
                roles.name(service),
            )
            assert row is not None, f"{roles.name(service)} was not made"
            assert (row["rolcanlogin"], row["rolsuper"], row["rolcreatedb"]) == (True, False, False)
            assert (row["rolcreaterole"], row["rolbypassrls"]) == (False, False)
            assert scram_matches(row["rolpassword"], roles.password(service)), service
        owner = await conn.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
            roles.base.db_schema,
        )
        assert owner == roles.name("migrate")
        for service in SERVICES:  # nothing until the migration grants it
            assert not await conn.fetchval(
                "SELECT has_schema_privilege($1, $2, 'USAGE')",
                roles.name(service), roles.base.db_schema,
            )  # fmt: skip
    finally:
        await conn.close()
    # Run again (a password file changed): the same roles, the new password.
    new = roles.secrets_dir / "postgres_gateway_password"
    new.write_text("rotated-password\n")
    env = _init_env(urls.database_url, roles.secrets_dir, roles.base.db_schema, roles.suffix)
    again = run_init(env)
    assert again.returncode == 0, again.stderr
    verifier = await as_superuser(
        urls, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", roles.name("gateway")
    )
    assert scram_matches(verifier, "rotated-password")


async def test_the_init_script_refuses_a_missing_password_file(
    urls: ServiceUrls, tmp_path: Path
) -> None:
    suffix, schema = f"_t{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:12]}"
    for service in ("migrate", "gateway", "ingest", "mover"):  # no aggregator's
        (tmp_path / f"postgres_{service}_password").write_text("pw\n")
    try:
        done = run_init(_init_env(urls.database_url, tmp_path, schema, suffix))
        assert done.returncode == 1
        assert "postgres_aggregator_password is missing or empty" in done.stderr
        made = await as_superuser(
            urls, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", f"conveyor%{suffix}"
        )
        assert made == 0, "nothing is made when a file is missing"
    finally:  # should it have made something after all
        names = [f"conveyor_{s}{suffix}" for s in ("migrate", *SERVICES)]
        await _drop_roles(urls.database_url, schema, names)


async def privileges(roles: Roles) -> dict[str, dict[str, set[str]]]:
    """What each runtime role may do on each table of the schema, as PostgreSQL says."""
    conn = await connect(roles.settings("migrate"))
    try:
        found: dict[str, dict[str, set[str]]] = {}
        for service in SERVICES:
            rows = await conn.fetch(
                """SELECT c.relname AS name, p.privilege
                   FROM pg_class c, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE',
                        'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(privilege)
                   WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
                     AND has_table_privilege($1, c.oid, p.privilege)""",
                roles.name(service),
            )
            found[service] = {}
            for r in rows:
                found[service].setdefault(r["name"], set()).add(r["privilege"])
        return found
    finally:
        await conn.close()


async def test_each_role_has_exactly_the_privileges_its_service_needs(migrated: Roles) -> None:
    tables = await as_migrate(
        migrated,
        "SELECT array_agg(tablename::text) FROM pg_tables WHERE schemaname = current_schema()",
    )
    decided = OPERATOR_ONLY | {t for grants in EXPECTED.values() for t in grants}
    assert set(tables) == decided, "a table no role's privileges were decided for (or gone)"
    owners = await as_migrate(
        migrated,
        "SELECT array_agg(DISTINCT tableowner::text) FROM pg_tables"
        " WHERE schemaname = current_schema()",
    )
    assert owners == [migrated.name("migrate")]
    assert await privileges(migrated) == EXPECTED


async def test_the_init_script_takes_over_a_schema_the_superuser_migrated(
    urls: ServiceUrls, stream_prefix: str, tmp_path: Path
) -> None:
    """An older volume (or `make run`): migrated as the superuser before the roles were
    made; the script makes its tables the migration role's and grants the runtime roles."""
    suffix, schema = f"_t{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:12]}"
    for service in ("migrate", *SERVICES):
        (tmp_path / f"postgres_{service}_password").write_text(f"pw-{service}\n")
    base = Settings(db_schema=schema, stream_prefix=stream_prefix)
    roles = Roles(base, suffix, tmp_path, urls.database_url)
    conn = await asyncpg.connect(urls.database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await migrations.apply(conn)
        await seed.slow_db(conn, on=True, delay_ms=1)  # a function of the superuser's too
        done = run_init(_init_env(urls.database_url, tmp_path, schema, suffix))
        assert done.returncode == 0, done.stderr
        owners = await as_migrate(
            roles,
            """SELECT array_agg(DISTINCT owner) FROM (
                   SELECT tableowner::text AS owner FROM pg_tables
                   WHERE schemaname = current_schema()
                   UNION SELECT proowner::regrole::text FROM pg_proc
                   WHERE pronamespace = current_schema()::regnamespace) o""",
        )
        assert owners == [roles.name("migrate")]
        assert await privileges(roles) == EXPECTED
        assert await cmd_migrate(argparse.Namespace(), roles.settings("migrate")) == 0
    finally:
        await conn.close()
        await _drop_roles(
            urls.database_url, schema, [roles.name(s) for s in ("migrate", *SERVICES)]
        )


@pytest.mark.parametrize("service", SERVICES)
async def test_a_role_cannot_do_what_its_service_does_not(migrated: Roles, service: str) -> None:
    conn = await connect(migrated.settings(service))
    try:
        for statement in FORBIDDEN[service] + FORBIDDEN_TO_ALL:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():  # rolled back, should one get through
                    await conn.execute(statement)
    finally:
        await conn.close()
    # Outside its schema too: the role cannot make a schema of its own.
    conn = await connect(migrated.settings(service))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA intruder")
    finally:
        await conn.close()


async def test_the_migration_role_migrates_and_a_later_migration_grants_its_table(
    migrated: Roles, tmp_path: Path
) -> None:
    settings = migrated.settings("migrate")
    assert await cmd_migrate(argparse.Namespace(), settings) == 0  # nothing left to apply
    # A later migration as the migration role: a new table, its grants in runtime_grants.
    later = tmp_path / "migrations"
    later.mkdir()
    for m in migrations.load():
        (later / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    (later / "9999_later.sql").write_text(
        """CREATE TABLE later (id bigint PRIMARY KEY);
           ALTER TABLE jobs ADD COLUMN later_note text;
           INSERT INTO runtime_grants VALUES ('gateway', 'later', 'SELECT, INSERT', 'a test');
           SELECT conveyor_grant();"""
    )
    conn = await connect(settings)
    try:
        applied = await migrations.apply(conn, later)
    finally:
        await conn.close()
    assert [m.version for m in applied] == [9999]
    gateway = await connect(migrated.settings("gateway"))
    try:
        await gateway.execute("INSERT INTO later VALUES (1)")
        assert await gateway.fetchval("SELECT count(*) FROM later") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await gateway.execute("DELETE FROM later")
    finally:
        await gateway.close()
    mover = await connect(migrated.settings("mover"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await mover.fetchval("SELECT count(*) FROM later")
    finally:
        await mover.close()


# --- each service's real work, as its own role ---------------------------------------


_FORMAT = logging.Formatter()


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def about_privileges(self) -> list[str]:
        lines = [
            f"{r.levelname} {r.name}: {r.getMessage()} {_FORMAT.formatException(r.exc_info)}"
            if r.exc_info
            else f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in self.records
        ]
        words = ("permission denied", "InsufficientPrivilege", "must be owner")
        return [line for line in lines if any(w in line for w in words)]


@dataclass
class Stack:
    client: httpx.AsyncClient
    roles: Roles
    workers: dict[str, Any] = field(default_factory=dict)

    async def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = await self.client.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    async def finished(self, job_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any]:
            job: dict[str, Any] = await self.ok("GET", f"/jobs/{job_id}")
            return job if job["status"] in ("completed", "failed", "cancelled") else {}

        return await wait_until(done, timeout=30, what=f"job {job_id} finished")


@contextlib.asynccontextmanager
async def stack(roles: Roles, clock: Callable[[], datetime]) -> AsyncIterator[Stack]:
    """The four services in this process, each as its own role."""
    async with contextlib.AsyncExitStack() as running:
        workers = {}
        for name, create in (
            ("mover", create_mover),
            ("aggregator", create_aggregator),
            ("ingest", create_ingest),
        ):
            app, service = create(roles.settings(name))
            await running.enter_async_context(app)
            workers[name] = service
        gateway = create_gateway(roles.settings("gateway"))
        gateway.state.clock = clock
        client = await running.enter_async_context(serve(gateway))
        yield Stack(client, roles, workers)


async def _lists_and_moves(s: Stack) -> None:
    """The gateway makes and renames a list; the mover copies, moves and deletes."""
    target = (await s.ok("POST", "/collections", 201, json={"name": "Roles target"}))["id"]
    await s.ok("PATCH", f"/collections/{target}", json={"name": "Roles target, renamed"})
    copy = await s.ok("POST", "/moves", 202, json={
        "source": MY_LIST, "target": target, "mode": "copy", "selection": [1, 2, 3, 400],
    })  # fmt: skip
    assert (await s.finished(copy["id"]))["status"] == "completed"
    move = await s.ok("POST", "/moves", 202, json={
        "source": MY_LIST, "target": LIKED, "mode": "move", "selection": [450, 451],
    })  # fmt: skip
    assert (await s.finished(move["id"]))["status"] == "completed"
    page = await s.ok("GET", f"/collections/{target}/companies")
    assert sorted(c["id"] for c in page["items"]) == [1, 2, 3, 400]
    mine = await s.ok("GET", f"/collections/{MY_LIST}/companies", params={"q": "45"})
    assert 450 not in {c["id"] for c in mine["items"]}
    deletion = await s.ok("DELETE", f"/collections/{target}", 202)
    assert (await s.finished(deletion["id"]))["status"] == "completed"
    await s.ok("GET", f"/collections/{target}", 404)
    # The gateway's reads of the projections and of its outbox.
    listed = await s.ok("GET", "/jobs")
    assert {j["id"] for j in listed["items"]} >= {copy["id"], move["id"], deletion["id"]}
    await s.ok("GET", "/jobs/stats")
    await s.ok("GET", "/jobs/stats/minutes")
    timeline = await s.ok("GET", f"/jobs/{copy['id']}/timeline")
    assert timeline["items"][0]["type"] == "JobQueued"
    await s.ok("GET", "/collections")
    await s.ok("GET", "/companies", params={"q": "1"})

    async def settled() -> bool:  # the gateway's outbox sweep saw them planned (UPDATE)
        unsettled = await as_migrate(
            s.roles, "SELECT count(*) FROM accepted_moves WHERE settled_at IS NULL"
        )
        return bool(unsettled == 0)

    await wait_until(settled, timeout=20, what="the outbox sweep settled every move")


async def _a_batch(s: Stack, minute: datetime) -> None:
    """Ingest stores pushed points; the aggregator aggregates and closes their minute."""
    await s.ok("PUT", "/batches/roles", 201, json={"rate": 0})
    points = [{"key": k, "ts": (minute + timedelta(seconds=5)).isoformat()} for k in (1, 2, 6)]
    await s.ok("POST", "/batches/roles/points", 202, json=points)

    async def closed() -> bool:
        return bool(
            await as_migrate(
                s.roles,
                "SELECT closed FROM minute_aggregates WHERE batch_id = 'roles' AND minute = $1",
                minute,
            )
        )

    await wait_until(closed, timeout=30, what="the batch's minute closed")
    stored = await as_migrate(s.roles, "SELECT count(*) FROM points WHERE batch_id = 'roles'")
    assert stored == 3
    series = await s.ok("GET", "/batches/roles/agg", params={
        "from": minute.isoformat(), "to": (minute + timedelta(minutes=1)).isoformat(),
    })  # fmt: skip
    (only,) = series["minutes"]
    assert (only["count"], only["sum"], only["closed"]) == (3, 9.0, True)
    batch = await s.ok("GET", "/batches/roles")
    assert batch["batch_id"] == "roles"
    await s.ok("GET", "/batches")


async def test_each_service_does_its_work_as_its_own_role(migrated: Roles) -> None:
    minute = floor_minute(utcnow()) - timedelta(minutes=3)
    kept = _Keep()
    logging.getLogger().addHandler(kept)
    try:
        async with stack(migrated, clock=lambda: minute + timedelta(seconds=6)) as s:
            await _lists_and_moves(s)
            await _a_batch(s, minute)
            # Each worker's forgetting of old applied messages (DELETE), as at start-up.
            for name, service in s.workers.items():
                await _forget(migrated, name, service.pool())
            redis = aioredis.from_url(migrated.base.redis_url)
            try:
                dead = {
                    spec.name: await redis.xlen(spec.prefixed(migrated.base.stream_prefix).dlq)
                    for spec in streams.ALL
                }
            finally:
                await redis.aclose()
            assert not any(dead.values()), f"dead letters: {dead}"
    finally:
        logging.getLogger().removeHandler(kept)
    assert kept.about_privileges() == []


async def _forget(roles: Roles, service: str, pool: asyncpg.Pool) -> None:
    """What each worker runs at start-up and hourly (DELETE of old applied messages)."""
    assert await pool.fetchval("SELECT current_user") == roles.name(service)
    await forget_applied_before(pool, days=0)
    left = await pool.fetchval(
        "SELECT count(*) FROM applied_messages WHERE consumer_group = $1", service
    )
    assert left == 0, f"{service} forgot nothing"


# --- the password file -----------------------------------------------------------------


def test_the_password_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret it's\n\n")
    settings = Settings(database_password_file=str(secret))
    assert database_password(settings) == "s3cret it's"
    assert database_password(Settings()) is None
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("content", [None, "", "\n"])
async def test_a_missing_or_empty_password_file_stops_the_start(
    tmp_path: Path, content: str | None
) -> None:
    secret = tmp_path / "pw"
    if content is not None:
        secret.write_text(content)
    settings = Settings(database_password_file=str(secret))
    with pytest.raises(PasswordFileError, match=str(secret)):
        await create_pool(settings)
    with pytest.raises(PasswordFileError, match=str(secret)):
        await connect(settings)
