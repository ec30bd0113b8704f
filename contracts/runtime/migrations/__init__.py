"""Versioned SQL migrations, applied by `conveyor migrate`.

A deliberately small runner rather than a tool: the tools that fit raw SQL
(dbmate, yoyo) need a second driver or a separate binary, and every test wants
the schema applied into a fresh PostgreSQL schema in-process through asyncpg.
What it does:

- files `NNNN_name.sql` beside this module (shipped in the wheel, read through
  `importlib.resources`), applied in version order;
- each file in its own transaction, recorded in `schema_migrations` with a checksum;
- a changed checksum of an applied file is an error (edit by adding a migration);
- a transaction-level advisory lock, so two `migrate` runs at once apply each file once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x0C0_4E_40  # any constant shared by every migrate run


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def _shipped() -> Traversable:
    return resources.files(__name__)


def load(directory: Traversable | None = None) -> list[Migration]:
    """The migrations in `directory` (default: the ones shipped here), in version order."""
    directory = _shipped() if directory is None else directory
    found: list[Migration] = []
    files = (f for f in directory.iterdir() if f.is_file() and f.name.endswith(".sql"))
    for path in sorted(files, key=lambda f: f.name):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: expected NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


async def apply(conn: asyncpg.Connection, directory: Traversable | None = None) -> list[Migration]:
    """Apply the migrations not yet applied in the connection's schema; return them."""
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied_now: list[Migration] = []
    for migration in load(directory):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            checksum = await conn.fetchval(
                "SELECT checksum FROM schema_migrations WHERE version = $1", migration.version
            )
            if checksum is not None:
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration)
    return applied_now
