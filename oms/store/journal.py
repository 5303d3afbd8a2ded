"""The local journal: every state change is written here first (see "Durability rule").

A SQLite file in WAL mode on the OMS's own volume. The OMS appends the row images of a state change
*before* it acts on the broker; the ``Drainer`` later copies them to the main database and only then
moves ``drain_cursor``. Killing the process at any point loses nothing: an entry whose ``append``
returned is committed to the WAL, and an entry is only marked drained after the database commit
(so a crash between the two copies it again, which the drainer's upsert makes harmless).

Why synchronous (plain ``sqlite3``, no thread pool, no ``await``): an append is one small local
transaction — tens of microseconds with ``synchronous=NORMAL`` in WAL mode, since a commit only
appends to the WAL without an fsync. Handing it to a thread would cost more than the write, and,
more importantly, a synchronous append cannot interleave with other coroutines: when ``append``
returns, the change is durable and nothing else ran in between, which is exactly the ordering
guarantee the OMS needs before it calls the broker.

Durability level: with ``synchronous=NORMAL`` a committed append survives a process crash or
``SIGKILL`` (the WAL is in the OS page cache); a power loss or kernel panic may roll back the last
few commits. Pass ``synchronous="FULL"`` to fsync every commit when that matters more than latency.

Tables (in the journal file; names do not clash with the database's, so the embedded default may
use one file for both)::

    journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT, key TEXT, row TEXT /*json*/, ts REAL)
    drain_cursor(id=0, seq)            -- every entry with seq <= cursor is in the database
    journal_rejects(seq, tbl, key, row, ts, error, rejected_ts)
                                       -- entries the database refused (constraint/data errors),
                                          kept here instead of blocking the drain forever
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from oms.store import codec

Row = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    row TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_journal_tbl_key ON journal (tbl, key, seq);
CREATE TABLE IF NOT EXISTS drain_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL,
    updated_ts REAL NOT NULL
);
INSERT OR IGNORE INTO drain_cursor (id, seq, updated_ts) VALUES (0, 0, 0);
CREATE TABLE IF NOT EXISTS journal_rejects (
    seq INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    row TEXT NOT NULL,
    ts REAL NOT NULL,
    error TEXT NOT NULL,
    rejected_ts REAL NOT NULL
);
"""


ONE_STATEMENT_ROWS = 16
"""Appends of up to this many rows are one ``INSERT ... VALUES (...), (...)`` statement (4 parameters a row)."""
_INSERT_ROWS = [""] + [
    "INSERT INTO journal (tbl, key, row, ts) VALUES " + ", ".join(["(?, ?, ?, ?)"] * n)
    for n in range(1, ONE_STATEMENT_ROWS + 1)
]

AUTOCHECKPOINT_PAGES = 20_000
"""~80 MB of WAL before an append checkpoints by itself, on the caller's thread (the drainer's ``checkpoint`` in its
worker thread runs often enough to come first: :data:`oms.store.drain.CHECKPOINT_INTERVAL_S`)."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    table: str
    key: str
    row: Row
    """The row image without ``oms_instance_id`` (datetimes restored)."""
    ts: float
    """Wall-clock UNIX time of the append."""

    def record(self) -> Any:
        return codec.from_row(self.table, self.row)


class Journal:
    """Append-only local log of row images with a drain cursor.

    Writes go through one connection under a lock (they are short). Reads use a connection per
    thread and take no lock — WAL readers never block the writer — so the large reads (a drain
    batch, the merged view during a long outage) can run in worker threads via
    ``asyncio.to_thread`` without ever making an append on the event loop wait."""

    def __init__(self, path: str | Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise ValueError("the journal must be a file (its point is to survive the process)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per batch).
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Checkpoints (copying the WAL back into the file, with fsyncs) would otherwise run inside
        # whichever append crosses the 1000-page mark and stall it for milliseconds. The drainer
        # runs them off the event loop (``checkpoint`` in a thread); this large threshold is only
        # the safety net for a journal nobody checkpoints.
        self._db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        self._db.executescript(_SCHEMA)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # --- write side ---------------------------------------------------------------------------

    def append(self, records: Iterable[Any]) -> int:
        """Journal the row images of ``records`` in one transaction; returns the last seq.

        Returns the current last seq when ``records`` is empty. Raises on a bad record (nothing of
        the batch is written then)."""
        now = time.time()
        items = []
        for rec in records:
            table, row = codec.to_row(rec, None)
            items.append((table, codec.row_key(table, row), codec.row_to_json(row), now))
        if not items:
            return self.last_seq()
        if len(items) <= ONE_STATEMENT_ROWS:
            # The common case (an intent writes two to four rows): one multi-row INSERT in autocommit mode is
            # its own transaction — atomic, committed to the WAL when it returns, and it takes the write lock
            # when it starts, as BEGIN IMMEDIATE does — so BEGIN, SELECT last_insert_rowid() and COMMIT (three
            # more statements per append) are not needed: the cursor's ``lastrowid`` is the last row's seq.
            with self._lock:
                cur = self._db.execute(_INSERT_ROWS[len(items)], [value for item in items for value in item])
                return int(cur.lastrowid or 0)
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany("INSERT INTO journal (tbl, key, row, ts) VALUES (?, ?, ?, ?)", items)
                last = cur.execute("SELECT last_insert_rowid()").fetchone()[0]
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return int(last)

    def mark_drained(self, upto_seq: int) -> None:
        """Move the cursor to ``upto_seq`` (call only after the database committed those rows).

        The cursor never moves backwards here; use ``rewind`` for that."""
        with self._lock:
            self._db.execute(
                "UPDATE drain_cursor SET seq = MAX(seq, ?), updated_ts = ? WHERE id = 0", (int(upto_seq), time.time())
            )

    def rewind(self, to_seq: int = 0) -> None:
        """Move the cursor back (tests, or to re-copy after restoring the database from a backup).

        Entries already pruned are not re-copied."""
        with self._lock:
            self._db.execute("UPDATE drain_cursor SET seq = ?, updated_ts = ? WHERE id = 0", (int(to_seq), time.time()))

    def reject(self, entries: Iterable[JournalEntry], error: str) -> None:
        """Park entries the database refused for good (kept in ``journal_rejects``, not lost)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO journal_rejects (seq, tbl, key, row, ts, error, rejected_ts)"
                    " SELECT seq, tbl, key, row, ts, ?, ? FROM journal WHERE seq = ?",
                    [(error, now, e.seq) for e in entries],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def prune(self, keep_drained_days: float) -> int:
        """Delete drained entries older than ``keep_drained_days``; returns how many."""
        cutoff = time.time() - keep_drained_days * 86400.0
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM journal WHERE seq <= (SELECT seq FROM drain_cursor WHERE id = 0) AND ts < ?", (cutoff,)
            )
            return cur.rowcount

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL back into the database file (PASSIVE: never blocks appends); meant to run
        in a worker thread. Returns SQLite's ``(busy, wal_pages, checkpointed)``."""
        [(busy, log_pages, done)] = self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return int(busy), int(log_pages), int(done)

    def close(self) -> None:
        self._closed = True
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self._db.close()

    # --- read side (any thread, no lock) -------------------------------------------------------

    def cursor(self) -> int:
        """The drain cursor: every entry with ``seq <= cursor()`` is in the database."""
        return self._cursor(self._reader())

    def last_seq(self) -> int:
        hit = self._reader().execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
        return int(hit[0]) if hit else 0

    def pending(self, limit: int = 500) -> list[JournalEntry]:
        """Undrained entries (``seq > cursor``) in append order, at most ``limit``."""
        rows = (
            self._reader()
            .execute(
                "SELECT seq, tbl, key, row, ts FROM journal"
                " WHERE seq > (SELECT seq FROM drain_cursor WHERE id = 0) ORDER BY seq LIMIT ?",
                (int(limit),),
            )
            .fetchall()
        )
        return [JournalEntry(s, t, k, codec.row_from_json(t, r), ts) for s, t, k, r, ts in rows]

    def backlog(self) -> int:
        """How many entries are not yet in the database.

        O(1): seqs are gap-free above the cursor (only drained entries are ever deleted), so this
        is ``last_seq - cursor`` (bounded by the first entry still held after a rewind)."""
        last, cursor, first = (
            self._reader()
            .execute(
                "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'journal'),"
                " (SELECT seq FROM drain_cursor WHERE id = 0), (SELECT MIN(seq) FROM journal)"
            )
            .fetchone()
        )
        if first is None:
            return 0
        return max(0, int(last) - max(int(cursor), int(first) - 1))

    def count_after(self, after_seq: int, table: str | None = None) -> int:
        """Entries with ``seq > after_seq`` (of ``table`` when given)."""
        sql = "SELECT COUNT(*) FROM journal WHERE seq > ?" + (" AND tbl = ?" if table else "")
        args = (int(after_seq), table) if table else (int(after_seq),)
        return int(self._reader().execute(sql, args).fetchone()[0])

    def latest_rows(self, after_seq: int | None = None, table: str | None = None) -> dict[str, dict[str, Row]]:
        """``{table: {key: row}}`` of every entry with ``seq > after_seq`` (default: the drain
        cursor), the latest image of each key winning — the part of the state the database may
        not have yet (used for the rebuild and the merged read view)."""
        db = self._reader()
        after = self._cursor(db) if after_seq is None else int(after_seq)
        if table is None:
            rows = db.execute("SELECT tbl, key, row FROM journal WHERE seq > ? ORDER BY seq", (after,))
        else:
            rows = db.execute(
                "SELECT tbl, key, row FROM journal WHERE seq > ? AND tbl = ? ORDER BY seq", (after, table)
            )
        out: dict[str, dict[str, str]] = {}
        for tbl, key, text in rows.fetchall():
            out.setdefault(tbl, {})[key] = text  # a later seq overwrites
        return {tbl: {k: codec.row_from_json(tbl, t) for k, t in keyed.items()} for tbl, keyed in out.items()}

    def latest_row(self, table: str, key: str, after_seq: int | None = None) -> Row | None:
        """The newest image of one key among entries with ``seq > after_seq`` (default the cursor)."""
        db = self._reader()
        after = self._cursor(db) if after_seq is None else int(after_seq)
        hit = db.execute(
            "SELECT row FROM journal WHERE tbl = ? AND key = ? AND seq > ? ORDER BY seq DESC LIMIT 1",
            (table, key, after),
        ).fetchone()
        return None if hit is None else codec.row_from_json(table, hit[0])

    def find_rows(self, table: str, column: str, value: Any, after_seq: int | None = None) -> list[Row]:
        """Latest images of ``table`` (``seq > after_seq``) whose ``column`` equals ``value``
        (matched inside SQLite with ``json_extract``, so a long backlog is not decoded in Python)."""
        if not column.isidentifier():
            raise ValueError(f"bad column name {column!r}")
        db = self._reader()
        after = self._cursor(db) if after_seq is None else int(after_seq)
        keys = [
            k
            for (k,) in db.execute(
                "SELECT DISTINCT key FROM journal WHERE tbl = ? AND seq > ? AND json_extract(row, ?) = ?",
                (table, after, f"$.{column}", value),
            )
        ]
        rows = (self.latest_row(table, k, after) for k in keys)
        return [r for r in rows if r is not None and r.get(column) == value]

    def quarantined(self) -> int:
        """How many entries the database refused and ``journal_rejects`` keeps (for /health, /metrics)."""
        return int(self._reader().execute("SELECT COUNT(*) FROM journal_rejects").fetchone()[0])

    def rejects(self) -> list[tuple[JournalEntry, str]]:
        rows = (
            self._reader().execute("SELECT seq, tbl, key, row, ts, error FROM journal_rejects ORDER BY seq").fetchall()
        )
        return [(JournalEntry(s, t, k, codec.row_from_json(t, r), ts), err) for s, t, k, r, ts, err in rows]

    # --- internals ----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (autocommit: every statement sees the latest commit)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("journal is closed")
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    @staticmethod
    def _cursor(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT seq FROM drain_cursor WHERE id = 0").fetchone()[0])

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
