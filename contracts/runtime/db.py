"""The asyncpg pool every service builds in its composition root.

Each service may connect as its own PostgreSQL role (README "PostgreSQL roles"): the
role is DATABASE_URL's user, its password the content of `database_password_file`
(a secret as a file), read when the pool is made (a missing or empty file stops the
start-up) and again for every new connection (a rotated file is picked up).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import asyncpg.pool

from contracts.runtime.secret_files import SecretFileError, read_secret
from contracts.runtime.settings import Settings


class PasswordFileError(SecretFileError):
    """`database_password_file` cannot be read, or is empty (not retried: no store is down)."""


def database_password(settings: Settings) -> str | None:
    """The password in `database_password_file` (trailing newlines dropped); None if unset."""
    return _read(settings.database_password_file) if settings.database_password_file else None


def _read(name: str) -> str:
    try:
        return read_secret("CONVEYOR_DATABASE_PASSWORD_FILE", name)
    except SecretFileError as exc:
        raise PasswordFileError(str(exc)) from None


def _password(settings: Settings) -> Callable[[], str] | None:
    """What asyncpg's `password=` takes: None (the URL decides), or the file read anew."""
    name = settings.database_password_file
    if not name:
        return None
    _read(name)  # now, so that a missing or empty file fails the start
    return lambda: _read(name)


async def create_pool(
    settings: Settings, *, reset: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
) -> asyncpg.Pool:
    """A pool whose connections use the settings' schema (tests use a fresh one).

    `reset`: what a connection goes through on its way back to the pool besides the
    rollback of an open transaction (asyncpg's `reset=`); by default asyncpg's reset
    query (advisory locks, cursors, LISTEN, session settings), a round trip per release.
    """
    pool = await asyncpg.create_pool(
        settings.database_url,
        reset=reset,
        password=_password(settings),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        server_settings={"search_path": settings.db_schema, "application_name": "conveyor"},
        command_timeout=60,
        timeout=5,  # connect timeout: a PostgreSQL that does not answer fails fast
    )
    assert pool is not None
    return pool


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pool's `reset=` for code that leaves no session state behind (no SET, LISTEN,
    advisory lock or cursor outside a transaction): no reset query, one round trip less
    per release; asyncpg still rolls back a transaction left open."""


# What handlers receive: a pooled connection, or a plain one in tests and scripts.
DbConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# What read-only queries accept: a connection, or the pool (which lends one per query).
Executor = DbConnection | asyncpg.Pool


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection in the settings' schema (commands and scripts; services use the pool)."""
    return await asyncpg.connect(
        settings.database_url,
        password=database_password(settings),
        server_settings={"search_path": settings.db_schema},
        timeout=5,
    )
