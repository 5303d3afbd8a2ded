"""The OMS's background loops besides the reconciler and order updates: the risk watch between
intents and the database migration retry while Postgres is unreachable. ``oms/supervisor.py`` runs them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from broker_core.clock import Clock
from oms.core.intents import IntentService
from oms.store.drain import is_connectivity_error
from oms.store.journal import Journal
from oms.store.migrate import migrate

log = logging.getLogger("oms.loops")


async def try_migrate(db_url: str) -> bool:
    """Run migrations; False (and a log line) when the database is unreachable, so the OMS trades on the
    journal alone."""
    try:
        await migrate(db_url)
        return True
    except Exception as exc:
        if not is_connectivity_error(exc):
            raise
        log.error(
            "database unreachable at start reason=DB_UNAVAILABLE (%s); trading on the journal, "
            "migrations and the copy to the database resume when it returns",
            type(exc).__name__,
        )
        return False


async def migrate_until_reachable(db_url: str, on_migrated: Callable[[], None], max_delay_s: float = 30.0) -> None:
    """Retry migrations with back-off until the database answers, then ``on_migrated`` (which marks the
    database migrated and starts the journal drain). Returns when done: a one-shot supervised loop."""
    delay = 1.0
    while not await try_migrate(db_url):
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)
    log.info("database reachable again reason=DB_RECOVERED: migrations done, draining the journal")
    on_migrated()


async def risk_watch(
    intents: IntentService,
    journal: Journal,
    clock: Clock,
    interval_s: float,
    keep_drained_days: float,
    beat: Callable[[], None] | None = None,
) -> None:
    """Account-level checks between intents: the day-loss latch (and flatten-on-halt), and pruning of
    journal entries already copied to the database. ``beat`` after each pass (loop supervision)."""
    last_prune = 0.0
    while True:
        await clock.sleep(interval_s)
        intents.flags(intents.portfolio())
        if time.monotonic() - last_prune > 3600:
            last_prune = time.monotonic()
            pruned = journal.prune(keep_drained_days)
            if pruned:
                log.info("journal: pruned %d entries drained more than %g days ago", pruned, keep_drained_days)
        if beat is not None:
            beat()
