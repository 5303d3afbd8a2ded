"""The one matching engine on a derived US session: US ticks, no price limits, the New York close
(early closes included), and the same order types and fills as on KRX."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from broker_core.clock import ManualClock
from broker_core.errors import OrderRejected
from broker_core.markets import us
from broker_core.markets.us import UsMarketRules
from broker_core.models import OrderRequest, OrderStatus, OrderType, Side
from broker_core.paper.matching import MatchingEngine, RejectCode
from broker_core.paper.us_daily import UsDailyFeed
from broker_core.paper.us_data import UsData, UsDataNotFound
from broker_core.paper.us_exchange import UsMatchingEngine, UsPaperExchange, us_paper_exchange

DAY = date(2024, 11, 29)


@pytest.fixture(scope="module")
def data() -> UsData:
    try:
        return UsData()
    except UsDataNotFound as exc:
        pytest.fail(f"the US reference data is required for these tests: {exc}")


def ny(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=us.TZ)


async def test_a_derived_early_close_session_trades_through_the_one_engine(data: UsData) -> None:
    clock = ManualClock(ny(9, 30))
    ex = us_paper_exchange(DAY, clock, data=data, symbols=["AAPL", "SPY"])
    assert isinstance(ex.engine, MatchingEngine) and ex.close_at == ny(13, 0)
    feed = ex.feed
    assert isinstance(feed, UsDailyFeed)
    aapl = feed.path("AAPL")
    low, high = aapl.source_ohlc[2] / 1e4, aapl.source_ohlc[1] / 1e4
    buy_at = us.round_down((low + high) / 2)
    ex.submit(OrderRequest("lim", "AAPL", Side.BUY, 40, OrderType.LIMIT, buy_at))
    ex.submit(OrderRequest("mkt", "SPY", Side.BUY, 3, OrderType.MARKET))
    ex.submit(OrderRequest("far", "AAPL", Side.BUY, 1, OrderType.LIMIT, 0.01))  # no daily limits: accepted
    ex.submit(OrderRequest("mlim", "SPY", Side.BUY, 2, OrderType.MARKETABLE_LIMIT))
    with pytest.raises(OrderRejected) as err:
        ex.submit(OrderRequest("tick", "AAPL", Side.BUY, 1, OrderType.LIMIT, 200.005))
    assert err.value.code == RejectCode.OFF_TICK and "tick $0.01" in err.value.message
    updates = ex.subscribe_order_updates()
    await ex.run()
    lim, mkt, far, mlim = (ex.engine.get_order(c) for c in ("lim", "mkt", "far", "mlim"))
    assert lim is not None and lim.status is OrderStatus.FILLED and lim.avg_fill_price <= buy_at
    assert mkt is not None and mkt.status is OrderStatus.FILLED and mlim is not None and mlim.filled_qty == 2
    assert far is not None and far.status is OrderStatus.EXPIRED and far.updated_at == ny(13, 0)
    fills = ex.engine.fills()
    assert all(us.is_on_tick(f.price) and ny(9, 30) < f.ts < ny(13, 0) for f in fills)
    assert sum(f.qty for f in fills if f.client_order_id == "lim") == 40
    acct = ex.engine.account()
    assert acct.currency == "USD" and acct.cash == pytest.approx(100_000 - sum(f.qty * f.price for f in fills))
    seen = []
    while not updates.empty():
        seen.append(updates.get_nowait())
    assert [u.order.status for u in seen if u.order.client_order_id == "far"] == [OrderStatus.EXPIRED]
    with pytest.raises(OrderRejected) as err:  # the day is over
        ex.submit(OrderRequest("late", "AAPL", Side.BUY, 1, OrderType.MARKET))
    assert err.value.code == RejectCode.MARKET_CLOSED


def test_orders_outside_the_regular_session_are_refused_unless_extended_hours(data: UsData) -> None:
    feed = UsDailyFeed(data, DAY, ["AAPL"])
    pre = ManualClock(ny(8, 0))
    ex = UsPaperExchange(feed, pre)
    with pytest.raises(OrderRejected) as err:
        ex.submit(OrderRequest("pre", "AAPL", Side.BUY, 1, OrderType.LIMIT, 230.0))
    assert err.value.code == RejectCode.MARKET_CLOSED and "PRE_MARKET" in err.value.message
    with pytest.raises(OrderRejected) as err:  # a bad price is reported before the closed market
        ex.submit(OrderRequest("pre2", "AAPL", Side.BUY, 1, OrderType.LIMIT, 230.001))
    assert err.value.code == RejectCode.OFF_TICK
    extended = UsPaperExchange(
        feed, ManualClock(ny(8, 0)), UsMatchingEngine(rules=UsMarketRules(extended_hours=True), session_date=DAY)
    )
    order = extended.submit(OrderRequest("pre", "AAPL", Side.BUY, 1, OrderType.LIMIT, 230.0))
    assert order.status is OrderStatus.NEW


def test_the_quote_is_a_one_cent_book_without_limits(data: UsData) -> None:
    engine = UsMatchingEngine(session_date=DAY)
    engine.add_instrument("AAPL", 234.93)
    q = engine.quote("AAPL", ny(9, 0))
    assert (q.last, q.bid, q.ask, q.upper_limit, q.lower_limit) == (234.93, 234.93, 234.94, None, None)
    engine.add_instrument("PENNY", 0.5123)
    q = engine.quote("PENNY", ny(9, 0))
    assert (q.bid, q.ask) == (0.5123, 0.5124)
    with pytest.raises(OrderRejected) as err:  # cash is reserved at last × 1.3 for a market buy
        engine.submit(OrderRequest("big", "AAPL", Side.BUY, 400, OrderType.MARKET), ny(10, 0))
    assert err.value.code == RejectCode.INSUFFICIENT_CASH and "USD" in err.value.message
