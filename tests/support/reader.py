"""The dashboards' reader on the real Postgres: the ``trading_reader`` role (emulated with ``SET ROLE`` on a
NOLOGIN role created when missing, before the migrations run, so the grants of revision 0002 are what lets it
read) and the check that every Metabase question returns its declared columns and rows."""

from __future__ import annotations

import asyncpg

from tests.support.pg import admin_execute
from trader.metabase import load_spec

READER = "trading_reader"


async def ensure_reader_role() -> None:
    await admin_execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN "
        f"CREATE ROLE {READER} NOLOGIN; END IF; END $$"
    )


async def reader_connection(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=5)
    await conn.execute(f"SET ROLE {READER}")
    return conn


async def check_questions(conn: asyncpg.Connection) -> None:
    """Every question of ``infra/metabase``: its declared columns, and at least one row."""
    spec = load_spec()
    for key, q in spec.questions.items():
        stmt = await conn.prepare(q.sql)
        columns = [a.name for a in stmt.get_attributes()]
        assert columns == q.columns, f"{key}: columns {columns} != declared {q.columns}"
        rows = await stmt.fetch()
        assert rows, f"{key} ({q.name}) returns no row after a run that traded"
