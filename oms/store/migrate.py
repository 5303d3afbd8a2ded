"""Engines and schema migrations.

``make_engine(url)`` builds the async engine the drainer and repository share; ``migrate(url)``
brings the schema to the newest Alembic revision. The OMS calls ``migrate`` on start; it is
idempotent (at head it does nothing) and safe when several OMS instances start at once against one
Postgres: the upgrade runs under a transaction-scoped advisory lock, so the second instance waits,
then finds the schema at head. Postgres DDL is transactional, so a failed upgrade leaves nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

STORE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = STORE_DIR / "migrations"
MIGRATION_LOCK_KEY = 0x7472616465720001
"""pg_advisory_xact_lock key held while upgrading ("trader" + 1)."""

_PG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+asyncpg"}


def normalize_url(database_url: str) -> str:
    """The async form of a database URL: ``postgresql://`` → ``postgresql+asyncpg://``,
    ``sqlite:///`` → ``sqlite+aiosqlite:///``. Other URLs are returned unchanged."""
    url = make_url(database_url)
    if url.drivername in _PG_DRIVERS:
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername in ("sqlite", "sqlite+pysqlite"):
        url = url.set(drivername="sqlite+aiosqlite")
    return url.render_as_string(hide_password=False)


def make_engine(database_url: str, *, connect_timeout: float = 3.0, **kwargs: Any) -> AsyncEngine:
    """An async engine for the store.

    SQLite: WAL, ``synchronous=NORMAL``, a busy timeout (the journal may share the file), the
    default pool. Postgres: ``pool_pre_ping`` (a connection broken by an outage is replaced, not
    handed out), a short connect timeout so an outage fails fast instead of stalling the drainer,
    a bounded pool. ``kwargs`` go to ``create_async_engine`` (e.g. ``poolclass=NullPool``)."""
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    if url.get_backend_name() == "postgresql":
        connect_args = {
            "timeout": connect_timeout,
            "command_timeout": 30,
            "server_settings": {"application_name": "trader-oms"},
        }
        connect_args.update(kwargs.pop("connect_args", {}))
        opts: dict[str, Any] = {"pool_pre_ping": True, "connect_args": connect_args}
        if kwargs.get("poolclass") is not NullPool:
            opts.update(pool_size=5, max_overflow=5, pool_timeout=connect_timeout + 2, pool_recycle=1800)
        opts.update(kwargs)
        return create_async_engine(url, **opts)
    return create_async_engine(url, **kwargs)


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (independent of the cwd)."""
    cfg = Config(str(STORE_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, cfg: Config, revision: str) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at ``database_url`` to ``revision`` (default: head)."""
    engine = make_engine(database_url, poolclass=NullPool)
    cfg = alembic_config()
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Held until commit; a second instance blocks here, then sees the schema at head.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade, cfg, revision)
            await conn.commit()
    finally:
        await engine.dispose()


async def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()
