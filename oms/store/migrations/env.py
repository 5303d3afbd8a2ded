"""Alembic environment of the OMS store.

Used two ways: ``oms.store.migrate.migrate()`` passes an open connection in
``config.attributes["connection"]`` (and holds the Postgres advisory lock around it); the command
line (``alembic -c oms/store/alembic.ini ...``) gets the URL from ``sqlalchemy.url`` or
``DATABASE_URL`` and opens its own async engine.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from oms.store.models import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    from oms.store.migrate import normalize_url

    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or DATABASE_URL")
    return normalize_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    from oms.store.migrate import make_engine

    engine = make_engine(_url())
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (conn := config.attributes.get("connection")) is not None:
    _run(conn)
else:  # the command line
    if config.config_file_name:
        from logging.config import fileConfig

        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_async())
