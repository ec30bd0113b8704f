from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from contracts.runtime import migrations

pytestmark = pytest.mark.integration


async def test_applied_once_and_recorded(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        again = await migrations.apply(conn)
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert again == []
    assert [r["version"] for r in versions] == [m.version for m in migrations.load()]


async def test_changed_migration_is_refused(pool: asyncpg.Pool, tmp_path: Path) -> None:
    for m in migrations.load():
        (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    first = migrations.load()[0]
    (tmp_path / f"{first.version:04d}_{first.name}.sql").write_text(first.sql + "\n-- edited\n")
    async with pool.acquire() as conn:
        with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
            await migrations.apply(conn, tmp_path)


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("SELECT 1")
    with pytest.raises(migrations.MigrationError, match=r"NNNN_name\.sql"):
        migrations.load(tmp_path)
