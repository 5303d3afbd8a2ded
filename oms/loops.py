"""The OMS's background loops besides the reconciler and order updates: the risk watch between
intents and the database migration retry while Postgres is unreachable."""

from __future__ import annotations

import asyncio
import logging
import time

from broker_core.clock import Clock
from oms.core.intents import IntentService
from oms.store.drain import Drainer, is_connectivity_error
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


async def migrate_then_drain(db_url: str, drainer: Drainer, on_migrated: asyncio.Event) -> None:
    """Retry migrations with back-off until the database answers, then start the journal drain."""
    delay = 1.0
    while not await try_migrate(db_url):
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
    on_migrated.set()
    log.info("database reachable again reason=DB_RECOVERED: migrations done, draining the journal")
    drainer.start()


async def risk_watch(
    intents: IntentService, journal: Journal, clock: Clock, interval_s: float, keep_drained_days: float
) -> None:
    """Account-level checks between intents: the day-loss latch (and flatten-on-halt), and pruning of
    journal entries already copied to the database."""
    last_prune = 0.0
    while True:
        await clock.sleep(interval_s)
        intents.flags(intents.portfolio())
        if time.monotonic() - last_prune > 3600:
            last_prune = time.monotonic()
            pruned = journal.prune(keep_drained_days)
            if pruned:
                log.info("journal: pruned %d entries drained more than %g days ago", pruned, keep_drained_days)
