"""Engines and schema migrations.

``make_engine(url)`` builds the async engine the drainer and repository share; ``migrate(url)``
brings the schema to the newest Alembic revision. The OMS calls ``migrate`` on start; it is
idempotent (at head it does nothing) and safe when several OMS instances start at once against one
Postgres: the upgrade runs under a transaction-scoped advisory lock, so the second instance waits,
then finds the schema at head. Postgres DDL is transactional, so a failed upgrade leaves nothing.

A restart against a database already at head is checked by revision, not replayed through Alembic:
one ``alembic_version`` read against :func:`head_revision` (read from the migration files' ``revision``
lines), and Alembic (with Mako and Pygments, ~0.1 s of imports) is imported only when there is
something to upgrade.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

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
    from alembic.config import Config

    cfg = Config(str(STORE_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return cfg


_REVISION_LINE = re.compile(r"^revision(?:\s*:\s*[\w\[\]| ]+)?\s*=\s*[\"']([\w-]+)[\"']\s*$", re.M)
_DOWN_LINE = re.compile(r"^down_revision(?:\s*:\s*[\w\[\]|, ]+)?\s*=\s*(?:[\"']([\w-]+)[\"']|None)\s*$", re.M)


@cache
def head_revision() -> str | None:
    """The head of the packaged migrations, from each file's ``revision = "…"`` and ``down_revision = "…"|None``
    lines (no Alembic import). None when a file does not have exactly one of each in that plain form (a merge, a
    branch, a computed id) or there is not exactly one head: :func:`migrate` then leaves the decision to Alembic."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        rev, down = _REVISION_LINE.findall(source), _DOWN_LINE.findall(source)
        if len(rev) != 1 or len(down) != 1:
            return None
        revisions.add(rev[0])
        if down[0]:
            downs.add(down[0])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 and downs <= revisions else None


def _revisions(connection: Connection) -> set[str] | None:
    """The revisions stamped in ``alembic_version`` (None when the table does not exist yet)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


def _upgrade(connection: Connection, cfg: Config, revision: str) -> None:
    from alembic import command

    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at ``database_url`` to ``revision`` (default: head); a database already at the
    packaged head is left as it is without running Alembic."""
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            head = head_revision() if revision == "head" else None
            if head is not None and await conn.run_sync(_revisions) == {head}:
                return
            if conn.dialect.name == "postgresql":
                # Held until commit; a second instance blocks here, then sees the schema at head.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade, alembic_config(), revision)
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
