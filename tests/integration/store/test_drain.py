"""Journal → database: exactly once, upserts, outages, rejects, the run loop."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.core.types import OrderState
from oms.store import codec
from oms.store.drain import DB_RECOVERED, DB_UNAVAILABLE, DRAIN_REJECTED, Drainer, is_connectivity_error
from oms.store.journal import Journal
from oms.store.repository import Repository

from . import factories as f


def expected_counts(records: list[object]) -> dict[str, int]:
    keys = {(codec.to_row(r, None)[0], codec.record_key(r)) for r in records}
    return dict(Counter(table for table, _ in keys))


async def assert_db_holds(engine: AsyncEngine, instance_id: str, records: list[object]) -> None:
    """Every record's latest image is in the database, each key exactly once."""
    repo = Repository(engine, instance_id)
    counts = {t: n for t, n in (await repo.counts()).items() if n}
    assert counts == expected_counts(records)
    latest = {(codec.to_row(r, None)[0], codec.record_key(r)): r for r in records}
    for (table, _key), rec in latest.items():
        _, row = codec.to_row(rec, None)
        stored = await repo.get_row(table, *codec.key_values(table, row))
        assert stored is not None and codec.from_row(table, stored) == rec


async def test_every_row_once_then_again_after_rewind(engine: AsyncEngine, journal: Journal, instance_id: str) -> None:
    records = [r for i in range(40) for r in f.one_of_each(i)]  # 560 entries, 14 tables
    journal.append(records[:300])
    journal.append(records[300:])
    drainer = Drainer(journal, engine, instance_id, batch_size=128)
    assert await drainer.drain_all() == len(records)
    assert journal.backlog() == 0 and journal.cursor() == journal.last_seq() == len(records)
    assert drainer.batches == 5 and drainer.rows_copied == len(records) and drainer.failures == 0
    await assert_db_holds(engine, instance_id, records)

    journal.rewind(0)  # e.g. a crash between the commit and the cursor move, times 520
    assert await drainer.drain_all() == len(records)
    await assert_db_holds(engine, instance_id, records)


async def test_state_changes_of_one_key_leave_one_row_with_the_latest_image(
    engine: AsyncEngine, journal: Journal, instance_id: str
) -> None:
    history = [
        f.order(1, state=OrderState.PENDING_SUBMIT),
        f.order(1, state=OrderState.SUBMITTED),
        f.order(1, state=OrderState.PARTIALLY_FILLED, filled=3),
        f.order(1, state=OrderState.PARTIALLY_FILLED, filled=7),
        f.order(1, state=OrderState.FILLED, filled=10),
    ]
    drainer = Drainer(journal, engine, instance_id, batch_size=2)
    journal.append(history[:1])
    await drainer.drain_all()  # first image alone
    journal.append(history[1:4])  # several images of one key inside one batch
    journal.append(history[4:])
    await drainer.drain_all()
    assert (await Repository(engine, instance_id).counts())["orders"] == 1
    stored = await Repository(engine, instance_id).get_order("ord-000001")
    assert stored == history[-1] and stored.state is OrderState.FILLED and stored.filled_qty == 10


async def test_outage_keeps_backlog_logs_once_and_drains_when_back(
    engine: AsyncEngine, down_engine: AsyncEngine, journal: Journal, instance_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oms.store.drain")
    drainer = Drainer(journal, down_engine, instance_id, batch_size=100)
    records = [f.order(i) for i in range(250)] + [f.fill(i) for i in range(250)]
    for i in range(0, 500, 50):  # trading goes on: appends interleave with failed drains
        journal.append(records[i : i + 50])
        assert await drainer.drain_once() == 0
        assert not drainer.db_ok
        assert drainer.backlog == i + 50
    assert drainer.failures == 10 and drainer.last_error_code == DB_UNAVAILABLE
    assert drainer.last_error is not None and "connect" in drainer.last_error.lower()
    outage_logs = [r for r in caplog.records if DB_UNAVAILABLE in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(outage_logs) == 1  # once per outage, not once per attempt
    assert drainer.stats()["backlog"] == 500 and drainer.stats()["db_ok"] is False

    drainer.engine = engine  # the database is back
    assert await drainer.drain_all() == 500
    assert drainer.db_ok and drainer.backlog == 0
    assert any(DB_RECOVERED in r.getMessage() for r in caplog.records)
    await assert_db_holds(engine, instance_id, records)


async def test_run_loop_backs_off_then_recovers(
    engine: AsyncEngine, down_engine: AsyncEngine, journal: Journal, instance_id: str
) -> None:
    """Drive ``run()`` with an injected sleep: no real waiting, the delays are inspected."""
    records = [f.intent(i) for i in range(30)]
    journal.append(records)
    delays: list[float] = []
    drainer: Drainer

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 7:
            drainer.engine = engine  # the outage ends after seven failed attempts
        if delay == drainer.interval_s:  # idle: everything is copied
            drainer.request_stop()

    drainer = Drainer(journal, down_engine, instance_id, batch_size=10, interval_s=0.2, sleep=fake_sleep)
    await drainer.run()
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]  # bounded exponential backoff
    assert delays[7:] == [0.0, 0.0, 0.0, 0.2]  # full batches go on at once, then the idle interval
    assert drainer.failures == 7 and drainer.batches == 3
    await assert_db_holds(engine, instance_id, records)


async def test_started_task_stops_and_flushes(engine: AsyncEngine, journal: Journal, instance_id: str) -> None:
    drainer = Drainer(journal, engine, instance_id, batch_size=50, interval_s=3600)
    drainer.start()
    records = [f.fill(i) for i in range(120)]
    journal.append(records)
    await drainer.stop(flush=True)
    assert journal.backlog() == 0
    await assert_db_holds(engine, instance_id, records)


async def test_refused_row_is_parked_and_the_rest_drains(
    engine: AsyncEngine, journal: Journal, instance_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = [f.intent(1, key="same-key"), f.order(1), f.fill(1)]
    clash = f.intent(2, key="same-key")  # a second intent reusing an idempotency key
    journal.append(good[:2] + [clash] + good[2:])
    drainer = Drainer(journal, engine, instance_id)
    assert await drainer.drain_once() == 4
    assert drainer.db_ok and drainer.rows_rejected == 1 and journal.backlog() == 0
    [(parked, error)] = journal.rejects()
    assert parked.record() == clash and "IntegrityError" in error
    assert any(DRAIN_REJECTED in r.getMessage() for r in caplog.records)
    await assert_db_holds(engine, instance_id, good)


def test_error_classification() -> None:
    from sqlalchemy import exc

    assert is_connectivity_error(ConnectionRefusedError(111, "refused"))
    assert is_connectivity_error(TimeoutError())
    assert is_connectivity_error(exc.OperationalError("x", {}, Exception("server closed")))
    assert not is_connectivity_error(exc.IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_connectivity_error(ValueError("bad"))


async def test_live_postgres_outage_through_a_proxy(postgres_database: str, journal: Journal, instance_id: str) -> None:
    """The same engine survives its server going away mid-session and coming back: pooled
    connections die, new ones are refused, the backlog grows, then everything lands once."""
    from sqlalchemy.engine import make_url

    from oms.store.migrate import make_engine
    from tests.support.proxy import SwitchableProxy

    proxy = await SwitchableProxy().start()
    url = make_url(postgres_database).set(host="127.0.0.1", port=proxy.port)
    engine = make_engine(url.render_as_string(hide_password=False), connect_timeout=2)
    try:
        drainer = Drainer(journal, engine, instance_id, batch_size=64)
        first = [f.order(i) for i in range(100)]
        journal.append(first)
        assert await drainer.drain_all() == 100  # the pool now holds live connections

        proxy.go_down()
        during = [f.order(i, state=OrderState.FILLED, filled=10) for i in range(50)]  # updates
        during += [f.fill(i) for i in range(200)] + [f.intent(i) for i in range(250)]
        for i in range(0, len(during), 100):
            journal.append(during[i : i + 100])
            assert await drainer.drain_once() == 0
        assert not drainer.db_ok and drainer.backlog == 500
        assert drainer.last_error_code == DB_UNAVAILABLE, drainer.last_error

        proxy.go_up()
        assert await drainer.drain_all() == 500
        assert drainer.db_ok and drainer.backlog == 0
        await assert_db_holds(engine, instance_id, first + during)
    finally:
        await engine.dispose()
        await proxy.close()


async def test_idle_drainer_probes_during_an_outage(
    engine: AsyncEngine, down_engine: AsyncEngine, journal: Journal, instance_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With nothing to copy, a drainer that saw an outage asks the database before calling it over
    (so /health does not report "ok" just because the journal is empty)."""
    drainer = Drainer(journal, down_engine, instance_id)
    journal.append([f.fill(1)])
    await drainer.drain_once()
    journal.rewind(journal.last_seq())  # pretend it was copied some other way: nothing pending
    assert not drainer.db_ok
    assert await drainer.drain_once() == 0
    assert not drainer.db_ok and drainer.failures == 2
    assert len([r for r in caplog.records if DB_UNAVAILABLE in r.getMessage()]) == 1
    drainer.engine = engine
    assert await drainer.drain_once() == 0
    assert drainer.db_ok
