"""A paper account that survives restarts: PaperStateStore, the exchange/broker hooks, the OMS wiring."""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import KST, ManualClock
from broker_core.errors import OrderRejected, OutcomeUnknown
from broker_core.market_rules import down
from broker_core.models import BrokerOrder, Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side, Tick
from broker_core.paper.broker import PaperBroker
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import StaticFeed
from broker_core.paper.matching import MatchingEngine
from broker_core.paper.persistence import PaperStateStore
from oms.settings import OmsConfig, OmsSettings, PaperConfig
from tests.support.wait import until
from trader.paper_wiring import PAPER_ACCOUNT_FILE, build_paper_broker

SYM, OTHER = "005930", "035720"  # bases 10,000 (tick 10) and 50,000 (tick 50)
DAY = date(2026, 2, 27)
NEXT_DAY = date(2026, 3, 3)
PROJECT = Path(__file__).resolve().parents[2]


def at(hh: int, mm: int, ss: float = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST) + timedelta(seconds=ss)


def new_engine(day: date = DAY, **kw: Any) -> MatchingEngine:
    kw.setdefault("order_window", None)
    return MatchingEngine({SYM: 10_000, OTHER: 50_000}, session_date=day, **kw)


def buy(
    cid: str, qty: int, price: float | None = None, order_type: OrderType = OrderType.LIMIT, symbol: str = SYM
) -> OrderRequest:
    return OrderRequest(cid, symbol, Side.BUY, qty, order_type, price)


def sell(
    cid: str, qty: int, price: float | None = None, order_type: OrderType = OrderType.LIMIT, symbol: str = SYM
) -> OrderRequest:
    return OrderRequest(cid, symbol, Side.SELL, qty, order_type, price)


def account_view(engine: MatchingEngine) -> tuple[Any, ...]:
    return (
        engine.account(),
        engine.positions(),
        engine.orders(),
        engine.open_orders(),
        engine.fills(),
        engine.reserved_cash(),
        engine.reserved_shares(SYM),
        engine.reserved_shares(OTHER),
        engine.closed,
        engine.last_price(SYM),
        engine.last_price(OTHER),
        engine.matched_through,
        engine.session_date,
    )


def busy_engine() -> MatchingEngine:
    """An account with every kind of order: filled, partially filled, working (limit, market,
    marketable limit, sell), cancelled, rejected; positions in two symbols; injected cash."""
    engine = new_engine()
    engine.set_position(OTHER, 30, 48_000)
    engine.adjust_cash(1_234.5)
    engine.on_tick(Tick(SYM, at(9, 0, 1), 10_000, 100))
    engine.submit(buy("filled", 10, 10_000), at(9, 0, 2))
    engine.submit(buy("partial", 100, 9_990), at(9, 0, 3))
    engine.submit(buy("rests", 20, 9_500), at(9, 0, 4))
    engine.submit(buy("mkt", 5, order_type=OrderType.MARKET, symbol=OTHER), at(9, 0, 5))
    engine.submit(OrderRequest("mlimit", SYM, Side.BUY, 3, OrderType.MARKETABLE_LIMIT, band_bps=50), at(9, 0, 6))
    engine.submit(sell("sell-other", 10, 52_000, symbol=OTHER), at(9, 0, 7))
    engine.submit(buy("cancelled", 1, 9_000), at(9, 0, 8))
    engine.cancel("cancelled", at(9, 0, 9))
    with pytest.raises(OrderRejected):
        engine.submit(buy("rejected", 1, 9_995), at(9, 0, 10))
    # 40 × 0.25 = 10 shares per print, in time priority
    engine.on_tick(Tick(SYM, at(9, 0, 11), 9_990, 40))  # filled 10 @ 9,990
    engine.on_tick(Tick(SYM, at(9, 0, 12), 9_990, 40))  # partial 10
    engine.on_tick(Tick(SYM, at(9, 0, 12), 9_980, 40))  # partial 20 (a second print of the same second)
    engine.on_tick(Tick(OTHER, at(9, 0, 13), 50_000, 8))  # mkt 2 of 5
    assert engine.get_order("filled").status is OrderStatus.FILLED
    assert engine.get_order("partial").status is OrderStatus.PARTIALLY_FILLED
    assert engine.get_order("mkt").status is OrderStatus.PARTIALLY_FILLED
    return engine


# -- the store on its own ----------------------------------------------------------------------


def test_save_then_load_restores_the_identical_account(tmp_path: Path) -> None:
    engine = busy_engine()
    store = PaperStateStore(tmp_path / "paper.db")
    assert store.load(new_engine()) is False  # an empty file
    assert store.save(engine) is True
    assert not engine.dirty and store.save(engine) is False  # nothing changed: nothing written

    restored = new_engine()
    assert PaperStateStore(tmp_path / "paper.db").load(restored) is True

    assert account_view(restored) == account_view(engine)
    assert restored.account().buyable_cash == engine.account().buyable_cash
    assert {o.client_order_id for o in restored.open_orders()} == {"partial", "rests", "mkt", "mlimit", "sell-other"}
    assert not restored.dirty


def test_restored_working_orders_keep_matching_like_the_original(tmp_path: Path) -> None:
    engine = busy_engine()
    store = PaperStateStore(tmp_path / "paper.db")
    store.save(engine)
    restored = new_engine()
    PaperStateStore(tmp_path / "paper.db").load(restored)

    later = [
        Tick(SYM, at(9, 1), 9_980, 400),
        Tick(OTHER, at(9, 1, 1), 50_000, 400),
        Tick(OTHER, at(9, 1, 2), 52_000, 400),
        Tick(SYM, at(9, 1, 3), 9_500, 400),
    ]
    for tick in later:
        assert restored.on_tick(tick) == engine.on_tick(tick)
    assert account_view(restored) == account_view(engine)
    assert restored.get_order("partial").status is OrderStatus.FILLED
    assert restored.get_order("rests").status is OrderStatus.FILLED
    assert restored.get_order("sell-other").status is OrderStatus.FILLED


def test_id_counters_continue_after_a_restart(tmp_path: Path) -> None:
    engine = busy_engine()
    PaperStateStore(tmp_path / "paper.db").save(engine)
    restored = new_engine()
    PaperStateStore(tmp_path / "paper.db").load(restored)

    earlier_orders = {o.broker_order_id for o in engine.orders()}
    earlier_fills = {f.execution_id for f in engine.fills()}
    fresh = restored.submit(buy("after", 1, 9_900), at(9, 2))
    restored.on_tick(Tick(SYM, at(9, 2, 1), 9_900, 10_000))
    assert fresh.broker_order_id not in earlier_orders
    (new_fill,) = [f for f in restored.fills() if f.client_order_id == "after"]
    assert new_fill.execution_id not in earlier_fills
    assert len({f.execution_id for f in restored.fills()}) == len(restored.fills())


def test_a_client_order_id_resubmitted_after_a_restart_returns_the_stored_order(tmp_path: Path) -> None:
    engine = busy_engine()
    PaperStateStore(tmp_path / "paper.db").save(engine)
    restored = new_engine()
    PaperStateStore(tmp_path / "paper.db").load(restored)
    before = account_view(restored)

    again = restored.submit(buy("rests", 20, 9_500), at(9, 3))
    assert again == engine.get_order("rests")
    assert restored.submit(buy("filled", 10, 10_000), at(9, 3)) == engine.get_order("filled")
    assert restored.submit(buy("rejected", 1, 9_995), at(9, 3)).status is OrderStatus.REJECTED
    assert account_view(restored) == before and restored.drain_updates() == []


def test_incremental_saves_equal_one_complete_save(tmp_path: Path) -> None:
    """Saving after every change writes only the change; the file ends up the same."""
    engine = new_engine()
    store = PaperStateStore(tmp_path / "inc.db")
    store.load(engine)
    store.save(engine)
    for i in range(30):
        engine.submit(buy(f"b{i}", 10, 10_000 - 10 * (i % 5)), at(9, 0, 1 + 2 * i))
        store.save(engine)
        engine.on_tick(Tick(SYM, at(9, 0, 2 + 2 * i), 10_000 - 10 * (i % 7), 20))
        store.save(engine)
        if i % 4 == 0 and not engine.get_order(f"b{i}").status.is_terminal:  # type: ignore[union-attr]
            engine.cancel(f"b{i}", at(9, 0, 2 + 2 * i))
            store.save(engine)
    engine.expire_day(at(15, 30))
    store.save(engine)

    incremental, complete = new_engine(), new_engine()
    PaperStateStore(tmp_path / "inc.db").load(incremental)
    PaperStateStore(tmp_path / "full.db").save(engine)
    PaperStateStore(tmp_path / "full.db").load(complete)
    assert account_view(incremental) == account_view(complete) == account_view(engine)
    assert incremental.closed


async def test_the_wal_is_checkpointed_by_the_stores_thread_not_by_saves(tmp_path: Path) -> None:
    """Saves only append to the WAL (no fsync on the caller's thread, which is the OMS's event loop); the
    store's own thread copies it back into the file, and ``close`` stops that thread."""
    path = tmp_path / "paper.db"
    others = set(threading.enumerate())
    store = PaperStateStore(path, checkpoint_interval_s=3600)
    engine = new_engine()
    store.save(engine)
    base = path.stat().st_size
    for i in range(1_500):  # ~1,500 WAL pages: past SQLite's default autocheckpoint (1,000)
        engine.submit(buy(f"c{i}", 1, 9_000 - 10 * (i % 50)), at(9, 30))
        store.save(engine)
    assert path.stat().st_size == base, "a save checkpointed the WAL on the caller's thread"
    busy, pages, done = store.checkpoint()
    assert (busy, done) == (0, pages) and pages > 1_000
    assert path.stat().st_size > base
    store.close()

    threaded = PaperStateStore(tmp_path / "threaded.db", checkpoint_interval_s=0.05)
    engine = new_engine()
    threaded.save(engine)
    base = threaded.path.stat().st_size
    for i in range(200):
        engine.submit(buy(f"c{i}", 1, 9_000), at(9, 30))
        threaded.save(engine)
    await until(lambda: threaded.path.stat().st_size > base, timeout=10, what="the checkpoint thread's first copy")
    workers = [t for t in threading.enumerate() if t.name == "paper-checkpoint" and t not in others]
    assert len(workers) == 1
    threaded.close()
    assert not any(t.is_alive() for t in workers)
    reopened = PaperStateStore(threaded.path)
    state = reopened.read_state()
    assert state is not None and len(state.orders) == 200
    reopened.close()


def test_a_new_session_date_carries_cash_and_positions_and_drops_the_old_day(tmp_path: Path) -> None:
    engine = busy_engine()
    PaperStateStore(tmp_path / "paper.db").save(engine)
    old = engine.account()

    today = new_engine(NEXT_DAY)
    store = PaperStateStore(tmp_path / "paper.db")
    assert store.load(today) is False
    assert store.stored_session_date() == NEXT_DAY  # the new day is written at once

    assert today.session_date == NEXT_DAY
    assert today.positions() == engine.positions()
    account = today.account()
    assert account.cash == old.cash and account.realized_pnl == 0
    assert account.buyable_cash == account.cash  # yesterday's working orders expired: nothing reserved
    assert today.orders() == [] and today.open_orders() == [] and today.fills() == []
    assert not today.closed and today.matched_through is None
    order = today.submit(buy("rests", 1, 9_500), at(9, 0, day=NEXT_DAY))  # yesterday's id is free again
    assert order.status is OrderStatus.NEW
    assert order.broker_order_id not in {o.broker_order_id for o in engine.orders()}
    store.save(today)

    again = new_engine(NEXT_DAY)
    assert PaperStateStore(tmp_path / "paper.db").load(again) is True
    assert [o.client_order_id for o in again.orders()] == ["rests"]
    assert again.positions() == engine.positions()


# -- the exchange and the broker -----------------------------------------------------------------


def day_tape() -> list[Tick]:
    """SYM and OTHER both print every 10 s from 09:00:10 (same timestamps), prices wandering."""
    ticks: list[Tick] = []
    for i in range(1, 41):
        ticks.append(Tick(SYM, at(9, 0, 10 * i), 10_000 + 10 * ((i * 7) % 9 - 4), 40))
        ticks.append(Tick(OTHER, at(9, 0, 10 * i), 50_000 + 50 * ((i * 5) % 7 - 3), 20))
    return ticks


class Crash(Exception):
    pass


class CrashingFeed(StaticFeed):
    """The feed dies (like the process) after ``n`` prints."""

    def __init__(self, ticks: list[Tick], n: int) -> None:
        super().__init__(DAY, ticks, {SYM: 10_000, OTHER: 50_000})
        self.n = n

    def __iter__(self) -> Iterator[Tick]:
        for i, tick in enumerate(super().__iter__()):
            if i == self.n:
                raise Crash
            yield tick


def place_orders(exchange: PaperExchange) -> None:
    exchange.engine.set_position(OTHER, 40, 49_000)
    exchange.persist()
    exchange.submit(buy("b1", 60, 10_000))
    exchange.submit(buy("b2", 30, 9_980))
    exchange.submit(sell("s1", 25, 50_100, symbol=OTHER))
    exchange.submit(buy("m1", 7, order_type=OrderType.MARKET, symbol=OTHER))


def test_exchange_with_a_store_saves_every_change_before_it_is_published(tmp_path: Path) -> None:
    path = tmp_path / "paper.db"
    exchange = PaperExchange(
        StaticFeed(DAY, day_tape(), {SYM: 10_000, OTHER: 50_000}),
        ManualClock(at(9, 0)),
        new_engine(),
        state_store=PaperStateStore(path),
    )
    reader = PaperStateStore(path)
    checked: list[OrderUpdate] = []

    class CheckingQueue(asyncio.Queue[Any]):
        def put_nowait(self, update: OrderUpdate) -> None:
            state = reader.read_state()
            assert state is not None
            stored = {s.order.client_order_id: s.order for s in state.orders}
            assert stored[update.order.client_order_id] == update.order
            if update.fill is not None:
                assert update.fill in state.fills
            checked.append(update)
            super().put_nowait(update)

    exchange._order_subs.append(CheckingQueue())  # sees each update at the moment it is published
    plain = exchange.subscribe_order_updates()
    place_orders(exchange)
    with pytest.raises(OrderRejected):
        exchange.submit(buy("off-tick", 1, 9_995))
    exchange.submit(buy("c1", 1, 9_000))
    exchange.cancel("c1")
    exchange.submit(buy("never", 1, 9_000))
    asyncio.run(exchange.run())

    assert exchange.fills > 0 and len(checked) == plain.qsize()
    assert {u.order.status for u in checked} >= {
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.REJECTED,
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
    }
    final = new_engine()
    assert PaperStateStore(path).load(final) is True
    assert account_view(final) == account_view(exchange.engine) and final.closed


def reference_run() -> MatchingEngine:
    exchange = PaperExchange(
        StaticFeed(DAY, day_tape(), {SYM: 10_000, OTHER: 50_000}), ManualClock(at(9, 0)), new_engine()
    )
    place_orders(exchange)
    asyncio.run(exchange.run())
    return exchange.engine


@pytest.mark.parametrize("resume_clock", ["open", "crash"])
def test_a_crash_anywhere_in_the_session_then_resume_matches_every_print_exactly_once(
    tmp_path: Path, resume_clock: str
) -> None:
    """Kill the replay after every possible print; the resumed account ends exactly like one
    uninterrupted run (no fill twice, none lost), whether the restarted clock starts back at
    the open (a ManualClock) or at the time of the crash."""
    reference = reference_run()
    ref_fills = reference.fills()
    assert len(ref_fills) > 8
    ticks = day_tape()
    for n in range(1, len(ticks)):
        path = tmp_path / f"crash{n}.db"
        first = PaperExchange(
            CrashingFeed(ticks, n), ManualClock(at(9, 0)), new_engine(), state_store=PaperStateStore(path)
        )
        place_orders(first)
        with pytest.raises(Crash):
            asyncio.run(first.run())

        start = at(9, 0) if resume_clock == "open" else ticks[n - 1].ts
        second = PaperExchange(
            StaticFeed(DAY, ticks, {SYM: 10_000, OTHER: 50_000}),
            ManualClock(start),
            new_engine(),
            state_store=PaperStateStore(path),
        )
        assert second.restored
        assert {o.client_order_id for o in second.engine.orders()} == {"b1", "b2", "s1", "m1"}
        place_orders_again = [
            second.submit(buy("b1", 60, 10_000)),
            second.submit(buy("m1", 7, None, OrderType.MARKET, OTHER)),
        ]
        assert [o.broker_order_id for o in place_orders_again] == [
            reference.get_order("b1").broker_order_id,
            reference.get_order("m1").broker_order_id,
        ]
        asyncio.run(second.run())

        fills = second.engine.fills()
        assert fills == ref_fills, f"crash after print {n}"
        assert second.engine.account() == reference.account(), f"crash after print {n}"
        assert second.engine.positions() == reference.positions()
        assert second.engine.orders() == reference.orders()


async def test_paper_broker_takes_a_state_store_and_saves_injections(tmp_path: Path) -> None:
    path = tmp_path / "paper.db"
    exchange = PaperExchange(
        StaticFeed(DAY, day_tape(), {SYM: 10_000, OTHER: 50_000}),
        ManualClock(at(9, 0)),
        MatchingEngine(order_window=None),
    )
    broker = PaperBroker(exchange, state_store=PaperStateStore(path))
    assert exchange.engine.session_date == DAY and exchange.state_store is not None
    broker.inject_position(SYM, 7, 8_000)
    broker.inject_cash(500)
    await broker.submit_order(sell("s1", 3, 10_100))

    again = PaperBroker(
        PaperExchange(
            StaticFeed(DAY, day_tape(), {SYM: 10_000}), ManualClock(at(9, 5)), MatchingEngine(order_window=None)
        ),
        state_store=PaperStateStore(path),
    )
    assert again.exchange.restored
    assert await again.get_positions() == await broker.get_positions()
    assert await again.get_account() == await broker.get_account()
    assert await again.get_order("s1") == await broker.get_order("s1")
    assert again.engine.reserved_shares(SYM) == 3


def test_a_failed_save_makes_the_submit_outcome_unknown(tmp_path: Path) -> None:
    store = PaperStateStore(tmp_path / "paper.db")
    exchange = PaperExchange(
        StaticFeed(DAY, [], {SYM: 10_000}), ManualClock(at(9, 0)), MatchingEngine(order_window=None), state_store=store
    )
    store.close()
    with pytest.raises(OutcomeUnknown) as err:
        exchange.submit(buy("b1", 1, 9_000))
    assert err.value.client_order_id == "b1"
    assert exchange.engine.get_order("b1") is not None and exchange.engine.dirty


def test_engine_without_a_session_date_cannot_be_loaded(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        PaperStateStore(tmp_path / "paper.db").load(MatchingEngine())


# -- OMS wiring ------------------------------------------------------------------------------------


def oms_settings(tmp_path: Path) -> OmsSettings:
    return OmsSettings(
        oms_data_dir=str(tmp_path / "oms"),
        oms_paper_date=str(DAY),
        trader_data_dir=str(tmp_path / "no-krx-data"),
        oms_admin_key="k",
    )


async def test_build_paper_broker_keeps_the_account_in_the_oms_data_dir(tmp_path: Path) -> None:
    config = OmsConfig(paper=PaperConfig(symbols=["900001"]))
    clock = ManualClock(at(9, 30))
    broker, exchange, symbols, _ = build_paper_broker(oms_settings(tmp_path), config, clock)
    assert exchange.state_store is not None
    assert exchange.state_store.path == tmp_path / "oms" / PAPER_ACCOUNT_FILE and not exchange.restored
    price = (await broker.get_quote(symbols[0])).last
    order = await broker.submit_order(OrderRequest("c1", symbols[0], Side.BUY, 1, OrderType.LIMIT, float(down(price))))

    broker2, exchange2, _, _ = build_paper_broker(oms_settings(tmp_path), config, ManualClock(at(9, 40)))
    assert exchange2.restored
    assert await broker2.get_order("c1") == order
    assert await broker2.list_open_orders() == [order]


def test_build_paper_broker_without_persist_starts_fresh(tmp_path: Path) -> None:
    config = OmsConfig(paper=PaperConfig(symbols=["900001"], persist=False))
    _, exchange, _, _ = build_paper_broker(oms_settings(tmp_path), config, ManualClock(at(9, 30)))
    assert exchange.state_store is None
    assert not (tmp_path / "oms" / PAPER_ACCOUNT_FILE).exists()
    assert OmsConfig.model_validate({"paper": {"persist": False}}).paper.persist is False


# -- a real kill ----------------------------------------------------------------------------------

CHILD_FEED = textwrap.dedent("""
    import asyncio, sys
    from datetime import date, datetime, timedelta
    from broker_core.clock import KST, ManualClock
    from broker_core.errors import OrderRejected
    from broker_core.models import OrderRequest, OrderType, Side, Tick
    from broker_core.paper.broker import PaperBroker
    from broker_core.paper.exchange import PaperExchange
    from broker_core.paper.feed import StaticFeed
    from broker_core.paper.matching import MatchingEngine
    from broker_core.paper.persistence import PaperStateStore

    SYM = "005930"
    OPEN = datetime(2026, 2, 27, 9, 0, tzinfo=KST)
    TICKS = [Tick(SYM, OPEN + timedelta(seconds=i + 1), 10_000 + 10 * ((i * 7) % 11 - 5), 8)
             for i in range(20_000)]

    def feed():
        return StaticFeed(date(2026, 2, 27), TICKS, {SYM: 10_000})
""")
CHILD = CHILD_FEED + textwrap.dedent("""
    async def main(path):
        exchange = PaperExchange(feed(), ManualClock(OPEN), MatchingEngine(order_window=None),
                                 state_store=PaperStateStore(path))
        broker = PaperBroker(exchange)
        await broker.subscribe_ticks([SYM])
        ticks, updates = broker.ticks(), broker.order_updates()

        async def fills():
            async for update in updates:
                if update.fill is not None:
                    print("FILL", update.fill.execution_id, flush=True)

        async def strategy():
            n = 0
            async for tick in ticks:
                n += 1
                if n % 3:
                    continue
                cid = f"c{n}"
                held = exchange.engine.position(SYM)
                free = (held.qty if held else 0) - exchange.engine.reserved_shares(SYM)
                if n % 2 and free >= 2:
                    req = OrderRequest(cid, SYM, Side.SELL, 2, OrderType.LIMIT, tick.price + 10)
                else:
                    req = OrderRequest(cid, SYM, Side.BUY, 3, OrderType.LIMIT, tick.price - 10)
                try:
                    order = await broker.submit_order(req)
                except OrderRejected as exc:
                    print("REJECT", cid, exc.code, flush=True)
                    continue
                print("ACK", cid, order.broker_order_id, flush=True)
                if n % 15 == 0:
                    cancelled = await broker.cancel_order(cid)
                    print("CANCEL", cid, cancelled.status.value, flush=True)

        tasks = [asyncio.create_task(fills()), asyncio.create_task(strategy())]
        await exchange.run()
        print("FEED-END", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1]))
""")


def _lines(stream: Any, out: queue.Queue[str | None]) -> None:
    for line in stream:
        if line.endswith("\n"):
            out.put(line.rstrip("\n"))
    out.put(None)


def test_sigkill_then_reload_finds_every_acked_order_and_every_published_fill(tmp_path: Path) -> None:
    path = tmp_path / "paper.db"
    kill_after = random.Random(os.getpid()).randrange(20, 200)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    errors = (tmp_path / "child.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=errors, text=True, cwd=PROJECT, env=env
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    got: list[str] = []
    acks = 0
    deadline = time.monotonic() + 120
    try:
        while acks < kill_after:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"child ended early ({proc.wait()}): {(tmp_path / 'child.err').read_text()}"
            got.append(line)
            acks += line.startswith("ACK ")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        errors.close()
    while (line := lines.get(timeout=60)) is not None:  # what the child printed before it died
        got.append(line)
    assert proc.returncode == -signal.SIGKILL

    acked = dict(tuple(line.split()[1:3]) for line in got if line.startswith("ACK "))  # type: ignore[misc]
    cancelled = {line.split()[1] for line in got if line.startswith("CANCEL ")}
    published = {line.split()[1] for line in got if line.startswith("FILL ")}
    assert len(acked) >= kill_after and published, f"killed after {kill_after} acks"

    state = PaperStateStore(path).read_state()
    assert state is not None and state.session_date == DAY
    stored = {s.order.client_order_id: s.order for s in state.orders}
    assert {cid: stored[cid].broker_order_id for cid in acked} == acked
    assert all(stored[cid].status is OrderStatus.CANCELLED for cid in cancelled)
    assert published <= {f.execution_id for f in state.fills}
    _assert_consistent(
        [s.order for s in state.orders], state.fills, state.cash, {p.symbol: p.qty for p in state.positions}
    )

    # the restarted exchange resumes the session: every acked order is there, nothing fills twice
    ns: dict[str, Any] = {}
    exec(compile(CHILD_FEED, "child_feed", "exec"), ns)
    exchange = PaperExchange(
        ns["feed"](), ManualClock(at(9, 0)), MatchingEngine(order_window=None), state_store=PaperStateStore(path)
    )
    assert exchange.restored
    assert {cid: exchange.engine.get_order(cid).broker_order_id for cid in acked} == acked  # type: ignore[union-attr]
    before = exchange.engine.fills()
    asyncio.run(exchange.run())
    after = exchange.engine.fills()
    assert after[: len(before)] == before
    assert len({f.execution_id for f in after}) == len(after)
    assert all(f.ts >= before[-1].ts for f in after[len(before) :]) if before else True
    engine = exchange.engine
    _assert_consistent(engine.orders(), after, engine.account().cash, {p.symbol: p.qty for p in engine.positions()})
    assert not engine.open_orders() and engine.closed


def _assert_consistent(orders: list[BrokerOrder], fills: list[Fill], cash: float, positions: dict[str, int]) -> None:
    """Fills add up to each order's filled qty, the position and the cash."""
    by_order: dict[str, int] = {}
    for f in fills:
        by_order[f.client_order_id] = by_order.get(f.client_order_id, 0) + f.qty
    for o in orders:
        assert o.filled_qty == by_order.get(o.client_order_id, 0) <= o.qty, o
    net = sum(f.qty if f.side is Side.BUY else -f.qty for f in fills)
    assert positions.get(SYM, 0) == net
    flow = sum(
        -(f.qty * f.price + f.commission) if f.side is Side.BUY else f.qty * f.price - f.commission - f.tax
        for f in fills
    )
    assert cash == pytest.approx(100_000_000 + flow)
