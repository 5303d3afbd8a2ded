"""Migrations: packaged, idempotent, in step with the models, safe to run concurrently."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from oms.store import models
from oms.store.migrate import alembic_config, current_revision, make_engine, migrate, normalize_url

from .conftest import create_pg_database, drop_pg_database, run_sync


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def _inspect(url: str) -> tuple[set[str], list[object]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), models.metadata)
            )
        return tables, diff
    finally:
        await engine.dispose()


async def test_migrate_twice_is_a_noop(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the script location must not depend on the cwd
    assert await current_revision(fresh_db_url) is None
    await migrate(fresh_db_url)
    assert await current_revision(fresh_db_url) == _head()
    tables, diff = await _inspect(fresh_db_url)
    assert set(models.TABLES) <= tables
    assert diff == []  # the revision creates exactly what the models describe

    await migrate(fresh_db_url)
    assert await current_revision(fresh_db_url) == _head()
    assert (await _inspect(fresh_db_url))[0] == tables


async def test_every_table_keys_on_instance_and_natural_key(fresh_db_url: str) -> None:
    await migrate(fresh_db_url)
    engine = make_engine(fresh_db_url)
    try:
        async with engine.connect() as conn:
            pks = await conn.run_sync(
                lambda c: {t: sa.inspect(c).get_pk_constraint(t)["constrained_columns"] for t in models.TABLES}
            )
            uniques = await conn.run_sync(lambda c: sa.inspect(c).get_unique_constraints("intents"))
    finally:
        await engine.dispose()
    for table, cols in pks.items():
        assert cols[0] == "oms_instance_id", table
    assert pks["fills"] == ["oms_instance_id", "execution_id"]
    assert pks["allocations"] == ["oms_instance_id", "symbol", "strategy_id"]
    assert ["oms_instance_id", "idempotency_key"] in [u["column_names"] for u in uniques]


def test_two_instances_migrating_one_postgres_at_once() -> None:
    """Both upgrades succeed; the advisory lock makes the second find the schema at head."""
    name, url = create_pg_database()
    try:

        async def both() -> None:
            await asyncio.gather(*(migrate(url) for _ in range(4)))

        run_sync(both())
        assert run_sync(current_revision(url)) == _head()
        assert set(models.TABLES) <= run_sync(_inspect(url))[0]
    finally:
        drop_pg_database(name)


def test_plain_urls_are_made_async() -> None:
    assert normalize_url("postgresql://u:p%40ss@h:5432/db").startswith("postgresql+asyncpg://u:p%40ss@h:5432/db")
    assert normalize_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("sqlite:////var/x.db") == "sqlite+aiosqlite:////var/x.db"
    assert normalize_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
