"""Fixtures for the store tests: SQLite files and real Postgres databases.

Postgres is the one on 127.0.0.1:5432 (override with ``TRADER_TEST_PG_DSN``, an admin DSN). Each
run creates its own ``trader_test_<random>`` databases and drops them afterwards. When Postgres is
missing the tests FAIL with a message saying so — they never skip.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.store.journal import Journal
from oms.store.migrate import make_engine, migrate

PG_ADMIN_DSN = os.environ.get("TRADER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DOWN_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
"""A Postgres URL nothing listens on: connections are refused at once."""

BACKENDS = ["sqlite", "postgres"]
T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, on a private loop in a worker thread
    (safe even when called while a test's event loop is running)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"Postgres is required for the store integration tests and is not reachable at "
            f"{PG_ADMIN_DSN!r} ({type(exc).__name__}: {exc}). Start it (the machine runs one on "
            f"127.0.0.1:5432) or set TRADER_TEST_PG_DSN.", pytrace=False)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(dbname: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{dbname}"


def create_pg_database() -> tuple[str, str]:
    """``(name, url)`` of a new empty database."""
    name = f"trader_test_{uuid.uuid4().hex[:12]}"
    run_sync(_admin(f'CREATE DATABASE "{name}"'))
    return name, pg_url(name)


def drop_pg_database(name: str) -> None:
    run_sync(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One migrated Postgres database for the session (tests isolate by instance id)."""
    name, url = create_pg_database()
    try:
        run_sync(migrate(url))
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'store.db'}"
    run_sync(migrate(url))
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL, once per backend."""
    return request.getfixturevalue(f"{request.param}_database")


@pytest.fixture(params=BACKENDS)
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def down_engine() -> AsyncIterator[AsyncEngine]:
    eng = make_engine(DOWN_URL, connect_timeout=2)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def instance_id() -> str:
    """A fresh OMS instance id: isolates each test's rows in the shared database."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite")
    try:
        yield j
    finally:
        j.close()
