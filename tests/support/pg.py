"""Real Postgres for tests: per-run databases on 127.0.0.1:5432, created and dropped by fixtures.

When Postgres is missing the tests FAIL with a message saying so — they never skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import pytest

PG_ADMIN_DSN = os.environ.get("TRADER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code on a private loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def admin_execute(sql: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"Postgres is required and is not reachable at {PG_ADMIN_DSN!r} ({type(exc).__name__}: {exc}). "
            "Start it (this machine runs one on 127.0.0.1:5432) or set TRADER_TEST_PG_DSN.",
            pytrace=False,
        )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(dbname: str, port: int | None = None) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    if port is not None:
        host_part = base.rsplit("@", 1)
        base = f"{host_part[0]}@127.0.0.1:{port}"
    return f"{base}/{dbname}"


def create_database() -> tuple[str, str]:
    name = f"trader_test_{uuid.uuid4().hex[:12]}"
    run_sync(admin_execute(f'CREATE DATABASE "{name}"'))
    return name, pg_url(name)


def drop_database(name: str) -> None:
    run_sync(admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fetch_value(url: str, sql: str) -> Any:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()
