"""The local journal on its own."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from oms.core.types import OrderState
from oms.store import codec
from oms.store.journal import Journal

from . import factories as f


def test_append_returns_last_seq_and_pending_is_in_order(journal: Journal) -> None:
    assert journal.append([]) == 0
    assert journal.append([f.order(1)]) == 1
    assert journal.append([f.order(2), f.fill(2), f.intent(2)]) == 4
    assert journal.append([]) == 4
    entries = journal.pending(10)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert [e.table for e in entries] == ["orders", "orders", "fills", "intents"]
    assert entries[1].record() == f.order(2)
    assert journal.pending(2) == entries[:2]
    assert journal.backlog() == 4 and journal.last_seq() == 4


def test_cursor_moves_forward_only_and_backlog_follows(journal: Journal) -> None:
    journal.append([f.order(i) for i in range(10)])
    journal.mark_drained(6)
    assert journal.cursor() == 6 and journal.backlog() == 4
    assert [e.seq for e in journal.pending(100)] == [7, 8, 9, 10]
    journal.mark_drained(3)  # a late, smaller mark never moves the cursor back
    assert journal.cursor() == 6
    journal.rewind(0)
    assert journal.backlog() == 10


def test_latest_rows_latest_image_wins(journal: Journal) -> None:
    journal.append([f.order(1, state=OrderState.PENDING_SUBMIT), f.fill(1)])
    journal.mark_drained(2)
    journal.append([f.order(1, state=OrderState.SUBMITTED)])
    journal.append([f.order(1, state=OrderState.PARTIALLY_FILLED, filled=5), f.order(2)])
    latest = journal.latest_rows()
    assert set(latest) == {"orders"}  # the fill was drained
    orders = {k: codec.from_row("orders", r) for k, r in latest["orders"].items()}
    assert orders[codec.key_text("orders", "ord-000001")].state is OrderState.PARTIALLY_FILLED
    assert len(orders) == 2
    assert set(journal.latest_rows(after_seq=0)) == {"orders", "fills"}
    row = journal.latest_row("orders", codec.key_text("orders", "ord-000001"))
    assert row is not None and row["filled_qty"] == 5


def test_find_rows_by_column(journal: Journal) -> None:
    journal.append([f.intent(1, key="k-1"), f.intent(2, key="k-2")])
    [row] = journal.find_rows("intents", "idempotency_key", "k-2")
    assert row["intent_id"] == "int-000002"
    assert journal.find_rows("intents", "idempotency_key", "nope") == []


def test_entries_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.append([f.order(i) for i in range(5)])
    j.mark_drained(2)
    j.close()
    j = Journal(path)
    try:
        assert j.cursor() == 2 and j.backlog() == 3
        assert [e.record() for e in j.pending(10)] == [f.order(i) for i in range(2, 5)]
        assert j.append([f.order(9)]) == 6  # AUTOINCREMENT: seqs are never reused
    finally:
        j.close()


def test_wal_mode_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in db.execute("PRAGMA table_info(journal)")]
        assert cols == ["seq", "tbl", "key", "row", "ts"]
    finally:
        db.close()


def test_prune_removes_only_old_drained_entries(journal: Journal) -> None:
    journal.append([f.order(i) for i in range(6)])
    journal.mark_drained(4)
    assert journal.prune(keep_drained_days=1) == 0  # drained but recent
    assert journal.prune(keep_drained_days=-1) == 4  # "older than tomorrow": all drained ones
    assert journal.backlog() == 2
    assert [e.seq for e in journal.pending(10)] == [5, 6]
    assert journal.append([f.order(7)]) == 7
    journal.rewind(0)  # entries 1-4 are gone: only what is held can be re-copied
    assert journal.backlog() == 3 == len(journal.pending(100))


def test_reject_parks_an_entry(journal: Journal) -> None:
    journal.append([f.order(1), f.order(2)])
    e = journal.pending(10)[1]
    journal.reject([e], "IntegrityError: boom")
    [(parked, err)] = journal.rejects()
    assert parked.seq == e.seq and parked.record() == f.order(2) and "boom" in err


def test_bad_record_writes_nothing(journal: Journal) -> None:
    with pytest.raises(TypeError):
        journal.append([f.order(1), object()])
    assert journal.backlog() == 0


def test_reads_from_other_threads_see_every_commit(journal: Journal) -> None:
    import concurrent.futures

    journal.append([f.order(i) for i in range(3)])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert pool.submit(journal.backlog).result() == 3
        journal.append([f.order(9)])
        journal.mark_drained(1)
        assert [e.seq for e in pool.submit(journal.pending, 10).result()] == [2, 3, 4]


def test_memory_journal_is_refused() -> None:
    with pytest.raises(ValueError):
        Journal(":memory:")


def test_append_ts_is_wall_clock(journal: Journal) -> None:
    before = time.time()
    journal.append([f.order(1)])
    assert journal.pending(1)[0].ts >= before - 1
