"""Fixtures for the store tests: SQLite files and real Postgres databases.

Postgres is the one on 127.0.0.1:5432 (override with ``TRADER_TEST_PG_DSN``, an admin DSN). Each
run creates its own ``trader_test_<random>`` databases and drops them afterwards. When Postgres is
missing the tests FAIL with a message saying so — they never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.store.journal import Journal
from oms.store.migrate import make_engine, migrate
from tests.support.pg import PG_ADMIN_DSN, create_database, drop_database, pg_url, run_sync  # noqa: F401

DOWN_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
"""A Postgres URL nothing listens on: connections are refused at once."""

BACKENDS = ["sqlite", "postgres"]
create_pg_database = create_database
drop_pg_database = drop_database


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
