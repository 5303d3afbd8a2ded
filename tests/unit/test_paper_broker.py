"""PaperBroker over a PaperExchange replaying a StaticFeed on a ManualClock (the feed drives time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import TypeVar

import pytest

from broker_core.broker import Broker
from broker_core.clock import KST, ManualClock
from broker_core.errors import OrderNotFound, OrderRejected, SubscriptionCapacityExceeded
from broker_core.models import Bar, OrderRequest, OrderStatus, OrderType, Side, Tick
from broker_core.paper.broker import PaperBroker
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import StaticFeed
from broker_core.paper.matching import MatchingEngine, RejectCode

SYM, OTHER = "005930", "035720"
DAY = date(2026, 2, 27)
T = TypeVar("T")


def at(hh: int, mm: int, ss: float = 0) -> datetime:
    return datetime(2026, 2, 27, hh, mm, tzinfo=KST) + timedelta(seconds=ss)


def feed(ticks: list[Tick]) -> StaticFeed:
    return StaticFeed(DAY, ticks, {SYM: 10_000, OTHER: 50_000})


def falling_tape(n: int = 6, qty: int = 40) -> list[Tick]:
    """SYM prints 10,000, 9,990, … every 10 s from 09:00:10; OTHER prints in between."""
    ticks = [Tick(SYM, at(9, 0, 10 * i), 10_000 - 10 * (i - 1), qty) for i in range(1, n + 1)]
    ticks += [Tick(OTHER, at(9, 0, 10 * i + 5), 50_000, 100) for i in range(1, n + 1)]
    return ticks


OPEN = at(9, 0)


def make(ticks: list[Tick], start: datetime = OPEN, **kw: object) -> tuple[PaperExchange, PaperBroker]:
    exchange = PaperExchange(feed(ticks), ManualClock(start), **kw)  # type: ignore[arg-type]
    return exchange, PaperBroker(exchange)


async def collect(broker: PaperBroker, stream: AsyncIterator[T]) -> list[T]:
    """Everything the stream delivered so far: closing the broker ends every stream."""
    await broker.close()
    return [item async for item in stream]


async def test_paper_broker_is_a_broker() -> None:
    _, broker = make([])
    assert isinstance(broker, Broker)
    assert broker.name == "paper" and broker.subscription_capacity == 40


async def test_end_to_end_updates_fills_positions_and_account_agree() -> None:
    exchange, broker = make(falling_tape())
    await broker.connect()
    updates = broker.order_updates()
    cash0 = (await broker.get_account()).cash

    order = await broker.submit_order(OrderRequest("b1", SYM, Side.BUY, 25, OrderType.LIMIT, 9_990))
    await exchange.run()

    got = await collect(broker, updates)
    assert [u.order.status for u in got] == [
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert all(u.order.client_order_id == "b1" == order.client_order_id for u in got)
    fills = [u.fill for u in got if u.fill is not None]
    assert [(f.qty, f.price) for f in fills] == [(10, 9_990), (10, 9_980), (5, 9_970)]
    assert await broker.list_fills() == fills
    assert await broker.list_fills(since=fills[1].ts) == fills[1:]
    (position,) = await broker.get_positions()
    notional = sum(f.qty * f.price for f in fills)
    assert (position.symbol, position.qty) == (SYM, 25)
    assert position.avg_price == pytest.approx(notional / 25)
    account = await broker.get_account()
    assert account.cash == pytest.approx(cash0 - notional - sum(f.commission for f in fills))
    assert account.equity == pytest.approx(account.cash + 25 * 9_950)
    final = await broker.get_order("b1")
    assert final.status is OrderStatus.FILLED and final.filled_qty == 25
    assert await broker.list_open_orders() == []
    assert exchange.done.is_set() and exchange.fills == 3 and exchange.ticks_processed == 12


async def test_an_order_placed_on_a_tick_fills_on_a_later_print() -> None:
    exchange, broker = make(falling_tape())
    await broker.subscribe_ticks([SYM])
    ticks = broker.ticks()

    async def strategy() -> None:
        async for tick in ticks:
            await broker.submit_order(OrderRequest("m1", SYM, Side.BUY, 5, OrderType.MARKET))
            assert tick.price == 10_000
            break

    task = asyncio.create_task(strategy())
    await exchange.run()
    await task

    order = await broker.get_order("m1")
    (fill,) = await broker.list_fills()
    assert order.created_at == at(9, 0, 10)
    assert (fill.price, fill.ts) == (9_990, at(9, 0, 20))


async def test_rejections_and_cancels_are_published() -> None:
    exchange, broker = make(falling_tape())
    updates = broker.order_updates()
    with pytest.raises(OrderRejected) as err:
        await broker.submit_order(OrderRequest("bad", SYM, Side.BUY, 1, OrderType.LIMIT, 9_995))
    assert err.value.code == RejectCode.OFF_TICK
    await broker.submit_order(OrderRequest("b1", SYM, Side.BUY, 1, OrderType.LIMIT, 9_000))
    cancelled = await broker.cancel_order("b1")
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotFound):
        await broker.cancel_order("nope")
    assert await broker.get_order("nope") is None

    got = await collect(broker, updates)
    assert [(u.order.client_order_id, u.order.status) for u in got] == [
        ("bad", OrderStatus.REJECTED),
        ("b1", OrderStatus.NEW),
        ("b1", OrderStatus.CANCELLED),
    ]


async def test_subscription_capacity_is_enforced() -> None:
    exchange = PaperExchange(feed([]), ManualClock(at(9, 0)))
    broker = PaperBroker(exchange, subscription_capacity=3)
    await broker.subscribe_ticks(["A", "B", "C"])
    await broker.subscribe_ticks(["A"])

    with pytest.raises(SubscriptionCapacityExceeded) as err:
        await broker.subscribe_ticks(["D", "E"])
    assert "capacity is 3" in err.value.message and err.value.code == "SUBSCRIPTION_CAPACITY"
    assert broker.subscribed == {"A", "B", "C"}

    await broker.unsubscribe_ticks(["A"])
    await broker.subscribe_ticks(["D"])
    assert broker.subscribed == {"B", "C", "D"}


async def test_default_capacity_is_forty() -> None:
    _, broker = make([])
    await broker.subscribe_ticks([f"{i:06d}" for i in range(40)])
    with pytest.raises(SubscriptionCapacityExceeded):
        await broker.subscribe_ticks(["999999"])


async def test_ticks_yields_only_subscribed_symbols() -> None:
    exchange, broker = make(falling_tape())
    await broker.subscribe_ticks([OTHER])
    ticks = broker.ticks()
    await exchange.run()
    got = await collect(broker, ticks)
    assert [t.symbol for t in got] == [OTHER] * 6


async def test_bars_show_only_what_has_happened_by_now() -> None:
    ticks = [Tick(SYM, at(9, m, s), 10_000 + 10 * m + s // 10, 10) for m in range(5) for s in (0, 30)]
    exchange, broker = make(ticks, start=at(9, 1, 30), pace=False)
    await exchange.run()

    bars = await broker.get_bars(SYM, at(9, 0), at(9, 10))
    assert [(b.ts, b.open, b.close, b.volume) for b in bars] == [
        (at(9, 0), 10_000, 10_003, 20),
        (at(9, 1), 10_010, 10_013, 20),
    ]
    assert exchange.ticks_skipped == 3

    exchange.clock.set(at(9, 3, 10))  # type: ignore[attr-defined]
    bars = await broker.get_bars(SYM, at(9, 1), at(9, 10), interval="2m")
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (at(9, 2), 10_020, 10_030, 10_020, 10_030, 30)
    ]


async def test_joining_mid_session_skips_earlier_prints_but_knows_the_last_price() -> None:
    exchange, broker = make(falling_tape(), start=at(9, 0, 35))
    await broker.submit_order(OrderRequest("m1", SYM, Side.BUY, 1, OrderType.MARKET))
    assert (await broker.get_quote(SYM)).last == 10_000

    await exchange.run()

    assert exchange.ticks_skipped == 5 and exchange.ticks_processed == 7
    (fill,) = await broker.list_fills()
    assert (fill.ts, fill.price) == (at(9, 0, 40), 9_970)
    quote = await broker.get_quote(SYM)
    assert quote.last == 9_950 and quote.volume == 6 * 40


async def test_working_orders_expire_at_the_close() -> None:
    ticks = [Tick(SYM, at(15, 20), 10_000, 10), Tick(SYM, at(15, 30), 10_000, 10), Tick(SYM, at(15, 45), 10_000, 10)]
    exchange, broker = make(ticks, start=at(15, 0))
    updates = broker.order_updates()
    await broker.submit_order(OrderRequest("b1", SYM, Side.BUY, 1, OrderType.LIMIT, 9_000))

    await exchange.run()

    order = await broker.get_order("b1")
    assert (order.status, order.reason, order.updated_at) == (OrderStatus.EXPIRED, "DAY_END", at(15, 30))
    assert [u.order.status for u in await collect(broker, updates)] == [OrderStatus.NEW, OrderStatus.EXPIRED]
    assert exchange.done.is_set() and exchange.clock.now() == at(15, 45)
    with pytest.raises(OrderRejected) as err:
        exchange.submit(OrderRequest("late", SYM, Side.BUY, 1, OrderType.LIMIT, 9_000))
    assert err.value.code == RejectCode.MARKET_CLOSED


async def test_working_orders_expire_when_the_feed_ends() -> None:
    exchange, broker = make(falling_tape())
    await broker.submit_order(OrderRequest("b1", SYM, Side.BUY, 1, OrderType.LIMIT, 9_000))
    await exchange.run()
    order = await broker.get_order("b1")
    assert order.status is OrderStatus.EXPIRED and order.updated_at == at(9, 1, 5)


async def test_injected_position_shows_and_can_be_sold() -> None:
    engine = MatchingEngine(order_window=None)
    exchange, broker = make(falling_tape(), engine=engine)
    broker.inject_position(SYM, 7, 8_000)
    assert [(p.symbol, p.qty, p.avg_price) for p in await broker.get_positions()] == [(SYM, 7, 8_000)]
    await broker.submit_order(OrderRequest("s1", SYM, Side.SELL, 7, OrderType.MARKET))
    await exchange.run()
    assert await broker.get_positions() == []
    assert (await broker.get_account()).realized_pnl > 0


async def test_daily_bars_come_from_the_daily_source() -> None:
    bar = Bar(SYM, datetime(2026, 2, 26, tzinfo=KST), 1, 2, 1, 2, 100, "1d")
    exchange = PaperExchange(feed([]), ManualClock(at(9, 0)))
    with_source = PaperBroker(exchange, daily_source=lambda s, a, b: [bar] if s == SYM else [])
    assert await with_source.get_daily_bars(SYM, date(2026, 2, 1), date(2026, 2, 26)) == [bar]
    assert await PaperBroker(exchange).get_daily_bars(SYM, date(2026, 2, 1), date(2026, 2, 26)) == []


def test_the_tape_buckets_prints_into_bars_of_any_interval() -> None:
    from broker_core.paper.exchange import Tape

    tape = Tape()
    start = datetime(2026, 2, 27, 9, 0, tzinfo=KST)
    for i in range(0, 30 * 60, 20):  # a print every 20 s for half an hour, price = minute
        tape.add(Tick("A", start + timedelta(seconds=i), float(1000 + i // 60), 1))
    end = start + timedelta(minutes=29)
    one = tape.bars("A", start, end, "1m")
    assert [(b.ts.minute, b.open, b.close, b.volume) for b in one] == [(m, 1000 + m, 1000 + m, 3) for m in range(30)]
    seven = tape.bars("A", start, end, "7m")  # 7-min marks from midnight: 08:59 (outside the window), 09:06 …
    assert [(b.ts.strftime("%H:%M"), b.open, b.close, b.volume) for b in seven] == [
        ("09:06", 1006, 1012, 21),
        ("09:13", 1013, 1019, 21),
        ("09:20", 1020, 1026, 21),
        ("09:27", 1027, 1029, 9),
    ]
