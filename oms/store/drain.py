"""Copy journal entries to the main database (the second half of the durability rule).

``Drainer.run()`` loops: read up to ``batch_size`` pending entries from the journal, upsert them on
their natural key ``(oms_instance_id, *KEY)`` in one database transaction, and only after the commit
move the journal's cursor. Copying an entry twice (a crash between commit and cursor move, or a
rewound cursor) therefore rewrites the same row, never adds one.

When the database is unreachable the drainer logs once per outage (reason ``DB_UNAVAILABLE``),
backs off exponentially (bounded by ``max_backoff_s``), keeps the backlog in the journal and resumes
when the database answers again. Rows the database refuses for good (a constraint or data error,
e.g. a second intent reusing an idempotency key, NUL in a string, an integer beyond int64) are found by
writing the failed batch row by row and quarantined in the journal's ``journal_rejects`` (reason
``DRAIN_REJECTED``; counted on ``/health`` and ``/metrics``), so one bad row never stops the rows behind
it. A connectivity error is never a refusal: the batch waits for the database.

All database calls are async; the journal batch is read in a worker thread; the cursor update is a
short synchronous SQLite write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oms.store import models
from oms.store.journal import Journal, JournalEntry

log = logging.getLogger("oms.store.drain")

DB_UNAVAILABLE = "DB_UNAVAILABLE"
DB_ERROR = "DB_ERROR"
DB_RECOVERED = "DB_RECOVERED"
DRAIN_REJECTED = "DRAIN_REJECTED"

Sleep = Callable[[float], Awaitable[None]]

_CONNECTIVITY_NAMES = frozenset(
    {
        # asyncpg (matched by name so this module does not import asyncpg)
        "PostgresConnectionError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InterfaceError",
        "InternalClientError",
        "QueryCanceledError",  # statement timeout: the server is too slow to count on right now
    }
)


_DATA_SQLSTATE_CLASSES = frozenset({"22", "23"})
"""SQLSTATE classes of a refused *value*: 22 data exception (NUL in ``text``, ``\\u0000`` or ``Infinity`` in
``jsonb``, a number out of range), 23 integrity constraint violation."""


def _chain(exc: BaseException, *, explicit: bool = False) -> Iterator[BaseException]:
    """``exc``, then what it wraps (a DBAPI ``orig``, else its ``__cause__``, else — unless ``explicit`` —
    the exception being handled when it was raised), each once."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        orig = getattr(cur, "orig", None)
        if isinstance(orig, BaseException):
            cur = orig
        else:
            cur = cur.__cause__ if explicit else (cur.__cause__ or cur.__context__)


def _refuses_the_data(exc: BaseException) -> bool:
    """The value cannot be stored, whatever the server's state: along the *explicit* chain only (an outage
    raised while a refused batch is being handled carries that refusal as its implicit context)."""
    for cur in _chain(exc, explicit=True):
        if isinstance(cur, (sa_exc.IntegrityError, sa_exc.DataError, OverflowError, UnicodeEncodeError)):
            return True  # OverflowError: an int beyond int64 (sqlite3 raises it unwrapped)
        sqlstate = getattr(cur, "sqlstate", None) or getattr(cur, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _DATA_SQLSTATE_CLASSES:
            return True  # asyncpg server errors, which SQLAlchemy wraps as a bare DBAPIError
        if type(cur).__name__ == "DataError" and isinstance(cur, ValueError):
            return True  # asyncpg's client-side DataError: a value it cannot encode (e.g. beyond int64)
    return False


def is_connectivity_error(exc: BaseException) -> bool:
    """True when ``exc`` means "the database is not reachable right now" (retry later), as opposed
    to "the database refuses this data" (a constraint or data error)."""
    if _refuses_the_data(exc):
        return False
    for cur in _chain(exc):
        if isinstance(
            cur,
            (
                OSError,
                TimeoutError,
                asyncio.TimeoutError,
                ConnectionError,
                sa_exc.TimeoutError,
                sa_exc.DisconnectionError,
                sa_exc.OperationalError,
                sa_exc.InterfaceError,
            ),
        ):
            return True
        if isinstance(cur, sa_exc.DBAPIError) and cur.connection_invalidated:
            return True
        if type(cur).__name__ in _CONNECTIVITY_NAMES:
            return True
    return False


def _is_data_error(exc: BaseException) -> bool:
    """The database (or the driver binding the values) refuses the rows themselves: retrying cannot help,
    the refused row is quarantined. Anything else (an outage, a schema problem) keeps the backlog."""
    if _refuses_the_data(exc):
        return True
    # a value that cannot even be bound (e.g. a corrupted journal row): not a DBAPI error
    return isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError)


def _upsert(dialect: str, table: sa.Table) -> sa.Insert:
    """``INSERT ... ON CONFLICT (pk) DO UPDATE SET <every other column> = excluded``."""
    ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    pk = [c.name for c in table.primary_key.columns]
    update: dict[str, sa.ColumnElement[Any]] = {
        c.name: ins.excluded[c.name]
        for c in table.c
        if c.name not in pk and c.name != "copied_at" and not models.is_generated(c)
    }
    update["copied_at"] = sa.func.now()
    return ins.on_conflict_do_update(index_elements=pk, set_=update)


CHECKPOINT_INTERVAL_S = 1.0
"""Wall seconds between two checkpoints of the journal's WAL by the drainer (in a worker thread). Under load the WAL
grows fast — ≈ 22 MB/s at 500 intents/s, a commit per intent rewriting about eleven 4-KB pages — and every 5 s (the
former interval) let it reach the writer's own autocheckpoint first (:data:`oms.store.journal.AUTOCHECKPOINT_PAGES`,
≈ 80 MB in under 4 s): that checkpoint ran inside an append, on the event loop, with a ≈ 50 ms fdatasync of the
WAL — the p99 of the intent path. Measured (``bench/intents.py --spawn sqlite --rate 500 --duration 10``, quiet
machine): p99 33–44 ms, p99.9 62–67 ms at 5 s; 8.0–10.5 ms and 31–35 ms at 1 s."""


class Drainer:
    """Copies the journal's pending entries to the database, for one OMS instance."""

    def __init__(
        self,
        journal: Journal,
        engine: AsyncEngine,
        instance_id: str,
        batch_size: int = 500,
        interval_s: float = 0.2,
        *,
        max_backoff_s: float = 5.0,
        backoff_base_s: float = 0.5,
        sleep: Sleep | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.journal = journal
        self.engine = engine
        """Settable: point the drainer at another engine (tests switch a "down" one for a live one)."""
        self.instance_id = instance_id
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.backoff_base_s = backoff_base_s
        self._sleep = sleep
        self.checkpoint_interval_s = checkpoint_interval_s
        self._last_checkpoint = time.monotonic()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._stmts: dict[tuple[str, str], sa.Insert] = {}
        self._columns = {
            name: tuple(c.name for c in t.c if c.name != "copied_at" and not models.is_generated(c))
            for name, t in models.TABLES.items()
        }
        # health / metrics
        self.db_ok = True
        self.last_error: str | None = None
        self.last_error_code: str | None = None
        self.outage_since: float | None = None
        self.last_success_ts: float | None = None
        self.consecutive_failures = 0
        self.rows_copied = 0
        """Journal entries copied (an entry superseded within its batch counts as copied)."""
        self.rows_upserted = 0
        self.batches = 0
        self.failures = 0
        self.rows_rejected = 0

    # --- one batch ----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return self.journal.backlog()

    async def drain_once(self) -> int:
        """Copy one batch; returns how many journal entries it drained (0 when idle or failing).

        Never raises for database trouble: failures are recorded (``db_ok``, ``last_error``,
        ``failures``) and the entries stay pending."""
        # Decoding a batch takes milliseconds: do it in a worker thread (the journal's reads take
        # no lock, so appends on the event loop never wait for it).
        entries = await asyncio.to_thread(self.journal.pending, self.batch_size)
        if not entries:
            if not self.db_ok:  # idle during an outage: find out whether it is over
                await self._probe()
            return 0
        try:
            refused = False
            try:
                async with self.engine.begin() as conn:
                    written = await self._write(conn, entries)
            except Exception as exc:
                if not _is_data_error(exc):
                    raise
                refused = True
            if refused:  # outside the except block: a later outage must not carry this refusal as context
                written = await self._write_one_by_one(entries)
        except Exception as exc:  # noqa: BLE001 - every failure keeps the backlog and backs off
            self._failed(exc)
            return 0
        self.journal.mark_drained(entries[-1].seq)
        self.rows_copied += len(entries)
        self.rows_upserted += written
        self.batches += 1
        self._ok()
        return len(entries)

    async def _probe(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
        else:
            self._ok()

    async def drain_all(self, max_batches: int | None = None) -> int:
        """Drain until the journal is empty, a batch fails, or ``max_batches`` ran; returns entries."""
        total, n = 0, 0
        while max_batches is None or n < max_batches:
            got = await self.drain_once()
            total += got
            n += 1
            if got == 0 or not self.db_ok:
                break
        return total

    async def _write(self, conn: AsyncConnection, entries: list[JournalEntry]) -> int:
        """Upsert the entries' latest images; returns the number of rows written."""
        written = 0
        latest: dict[str, dict[str, dict[str, Any]]] = {}
        for e in entries:  # the latest image of a key wins; one statement may not hit a row twice
            latest.setdefault(e.table, {})[e.key] = e.row
        dialect = conn.dialect.name
        for table, rows in latest.items():
            stmt = self._stmts.get((dialect, table))
            if stmt is None:
                stmt = self._stmts[(dialect, table)] = _upsert(dialect, models.TABLES[table])
            cols = self._columns[table]
            params = [
                {c: (self.instance_id if c == "oms_instance_id" else r.get(c)) for c in cols} for r in rows.values()
            ]
            await conn.execute(stmt, params)
            written += len(params)
        return written

    async def _write_one_by_one(self, entries: list[JournalEntry]) -> int:
        """After a data error: write each entry alone and park the ones the database refuses."""
        written = 0
        for e in entries:
            try:
                async with self.engine.begin() as conn:
                    written += await self._write(conn, [e])
            except Exception as exc:
                if not _is_data_error(exc):
                    raise
                reason = f"{type(exc).__name__}: {_short(exc)}"
                self.journal.reject([e], reason)
                self.rows_rejected += 1
                log.error(
                    "journal seq %s %s %s refused by the database reason=%s: quarantined in journal_rejects, "
                    "the rows behind it go on: %s",
                    e.seq,
                    e.table,
                    e.key,
                    DRAIN_REJECTED,
                    reason,
                )
        return written

    # --- health bookkeeping -------------------------------------------------------------------

    def _ok(self) -> None:
        if not self.db_ok:
            down = time.time() - (self.outage_since or time.time())
            log.warning(
                "%s: database reachable again after %.1fs of outage; backlog %d",
                DB_RECOVERED,
                down,
                self.journal.backlog(),
            )
        self.db_ok = True
        self.outage_since = None
        self.consecutive_failures = 0
        self.last_success_ts = time.time()

    def _failed(self, exc: BaseException) -> None:
        code = DB_UNAVAILABLE if is_connectivity_error(exc) else DB_ERROR
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {_short(exc)}"
        self.last_error_code = code
        if self.db_ok:  # first failure of this outage: log once, loudly
            self.db_ok = False
            self.outage_since = time.time()
            log.error(
                "%s: cannot copy the journal to the database (%s); trading continues, "
                "backlog %d kept in the journal, retrying with backoff",
                code,
                self.last_error,
                self.journal.backlog(),
                exc_info=code == DB_ERROR,
            )
        else:
            log.debug("%s: still failing (%s)", code, self.last_error)

    def backoff_delay(self) -> float:
        """The pause after the current run of consecutive failures: 0.5, 1, 2, 4, 5, 5, ... s."""
        k = max(1, self.consecutive_failures)
        return min(self.max_backoff_s, self.backoff_base_s * 2 ** (k - 1))

    def stats(self) -> dict[str, Any]:
        """Figures for /health and /metrics."""
        return {
            "db_ok": self.db_ok,
            "backlog": self.journal.backlog(),
            "last_error": self.last_error,
            "last_error_code": self.last_error_code,
            "outage_since": self.outage_since,
            "last_success_ts": self.last_success_ts,
            "rows_copied": self.rows_copied,
            "rows_upserted": self.rows_upserted,
            "batches": self.batches,
            "failures": self.failures,
            "rows_rejected": self.rows_rejected,
        }

    # --- loop ---------------------------------------------------------------------------------

    async def run(self, beat: Callable[[], None] | None = None) -> None:
        """Drain until ``stop()``: immediately again while batches are full, every ``interval_s``
        when idle, with bounded exponential backoff while the database fails. ``beat`` is called after
        every pass that read the journal (liveness for the loop supervisor; a database outage is a pass)."""
        try:
            while not self._stopping:
                try:
                    n = await self.drain_once()
                except Exception:  # a journal read failed: never let the loop die
                    log.exception("DRAIN_ERROR: reading the journal failed; retrying")
                    self.failures += 1
                    await self._pause(self.max_backoff_s)
                    continue
                if beat is not None:
                    beat()
                if not self.db_ok:
                    delay = self.backoff_delay()
                elif n >= self.batch_size:
                    delay = 0.0
                else:
                    delay = self.interval_s
                if self._stopping:
                    break
                await self._maybe_checkpoint()
                await self._pause(delay)
        finally:
            self._stopping = False

    async def _maybe_checkpoint(self) -> None:
        """Checkpoint the journal's WAL in a worker thread now and then (keeps fsyncs out of
        the appends on the event loop)."""
        if time.monotonic() - self._last_checkpoint < self.checkpoint_interval_s:
            return
        self._last_checkpoint = time.monotonic()
        try:
            await asyncio.to_thread(self.journal.checkpoint)
        except Exception:  # noqa: BLE001 - a missed checkpoint only lets the WAL grow a little
            log.warning("journal checkpoint failed", exc_info=True)

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task of the current event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="journal-drainer")
        return self._task

    def request_stop(self) -> None:
        """Ask ``run()`` to return after its current step (safe to call from inside the loop)."""
        self._stopping = True
        self._wake.set()

    async def stop(self, flush: bool = True) -> None:
        """Stop the loop; with ``flush`` try once more to copy everything (skipped when down)."""
        self.request_stop()
        if self._task is not None:
            await self._task
            self._task = None
        if flush and self.db_ok:
            await self.drain_all()

    def wake(self) -> None:
        """Cut the current idle pause short (e.g. right after a large append)."""
        self._wake.set()

    async def _pause(self, delay: float) -> None:
        if self._sleep is not None:
            await self._sleep(delay)
            return
        if delay <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass
        self._wake.clear()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
