"""Persistence: the local journal, the drainer that copies it to the main database, the schema
(SQLAlchemy models + Alembic migrations) and the read side.

Typical wiring in the OMS lifespan::

    engine = make_engine(settings.database_url)
    await migrate(settings.database_url)
    journal = Journal(settings.journal_path)
    drainer = Drainer(journal, engine, instance_id)
    reader = MergedReader(Repository(engine, instance_id), journal, db_ok=lambda: drainer.db_ok)
    state = await reader.load_state(trading_day, intents_since=day_start)   # rebuild
    drainer.start()
    ...  journal.append([...]) before every broker call; reader.list_intents(...) for the API
    await drainer.stop(); journal.close(); await engine.dispose()
"""

from oms.store.codec import from_row, to_row
from oms.store.drain import DB_UNAVAILABLE, Drainer, is_connectivity_error
from oms.store.journal import Journal, JournalEntry
from oms.store.migrate import make_engine, migrate, normalize_url
from oms.store.repository import MergedReader, Repository

__all__ = [
    "DB_UNAVAILABLE",
    "Drainer",
    "Journal",
    "JournalEntry",
    "MergedReader",
    "Repository",
    "from_row",
    "is_connectivity_error",
    "make_engine",
    "migrate",
    "normalize_url",
    "to_row",
]
