"""The real alpaca-py 0.44 SDK against the fake Alpaca: every call the adapter makes (and the rest of the
surface the fake serves) parses into the SDK's models, and the SDK's own 429/504 retry of a submit never
doubles an order that carries a client_order_id.

Calls the adapter makes, each exercised here: TradingClient.get_account, get_all_assets(GetAssetsRequest),
submit_order(MarketOrderRequest | LimitOrderRequest), get_order_by_client_id, get_order_by_id, get_orders
(GetOrdersRequest), cancel_order_by_id, get_all_positions, get("/account/activities/FILL");
StockHistoricalDataClient.get_stock_snapshot, get_stock_bars (minute and day); TradingStream
(subscribe_trade_updates, run, stop_ws); StockDataStream (subscribe_trades, unsubscribe_trades, run, stop_ws).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import msgpack
import pytest
import requests
import websockets
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.models import Bar as SdkBar
from alpaca.data.models import Trade as SdkTrade
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AccountStatus,
    AssetClass,
    AssetExchange,
    AssetStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import TradeActivity, TradeUpdate
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
)
from alpaca.trading.stream import TradingStream

from broker_core.alpaca.errors import parse_body
from broker_core.alpaca.fake import FakeAlpaca
from broker_core.clock import NEW_YORK, VirtualClock
from broker_core.markets import us
from tests.integration.alpaca.conftest import SYMBOLS, engine_orders, ny, posts
from tests.support.wait import until


def clients(fake: FakeAlpaca, **trading_kw: Any) -> tuple[TradingClient, StockHistoricalDataClient]:
    env = fake.client_env()
    key, secret = env["ALPACA_API_KEY"], env["ALPACA_SECRET_KEY"]
    trading = TradingClient(key, secret, paper=True, url_override=env["ALPACA_BASE_URL"], **trading_kw)
    data = StockHistoricalDataClient(key, secret, url_override=env["ALPACA_DATA_URL"])
    return trading, data


async def sdk(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking SDK call off the event loop (the fake runs on it)."""
    return await asyncio.to_thread(fn, *args)


def market(symbol: str, qty: int, cid: str | None = None, side: OrderSide = OrderSide.BUY) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid)


async def test_the_trading_calls_of_the_adapter_parse(fake: FakeAlpaca, clock: VirtualClock) -> None:
    trading, _ = clients(fake)
    account = await sdk(trading.get_account)
    assert account.status is AccountStatus.ACTIVE and account.cash == "100000.00" and account.currency == "USD"
    assets = await sdk(
        trading.get_all_assets, GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.US_EQUITY)
    )
    assert sorted(a.symbol for a in assets) == sorted(SYMBOLS)
    assert {a.symbol: a.exchange for a in assets}["SPY"] is AssetExchange.ARCA and all(
        not a.fractionable for a in assets
    )

    bought = await sdk(trading.submit_order, market("AAPL", 5, "sdk-m1"))
    assert isinstance(bought.id, uuid.UUID) and bought.client_order_id == "sdk-m1"
    assert bought.status is OrderStatus.NEW and bought.type is OrderType.MARKET and bought.qty == "5"
    limit = LimitOrderRequest(
        symbol="SPY", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=100.0, client_order_id="l1"
    )
    resting = await sdk(trading.submit_order, limit)
    assert resting.limit_price == "100" and resting.status is OrderStatus.NEW
    by_cid = await sdk(trading.get_order_by_client_id, "l1")
    by_id = await sdk(trading.get_order_by_id, resting.id)
    assert by_cid.id == by_id.id == resting.id
    open_orders = await sdk(
        trading.get_orders, GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, direction="asc")
    )
    assert "l1" in [o.client_order_id for o in open_orders]
    assert await sdk(trading.cancel_order_by_id, resting.id) is None
    assert (await sdk(trading.get_order_by_id, resting.id)).status is OrderStatus.CANCELED

    async def filled() -> Any:
        return (await sdk(trading.get_order_by_client_id, "sdk-m1")).status is OrderStatus.FILLED

    await until(filled, timeout=20, what="the market buy filled")
    order = await sdk(trading.get_order_by_client_id, "sdk-m1")
    assert order.filled_qty == "5" and order.filled_at is not None and us.is_on_tick(float(order.filled_avg_price))
    [position] = await sdk(trading.get_all_positions)
    assert (position.symbol, position.qty, position.side.value) == ("AAPL", "5", "long")
    rows = await sdk(trading.get, "/account/activities/FILL", {"after": ny(9, 30).isoformat(), "direction": "asc"})
    [activity] = [TradeActivity(**row) for row in rows]
    assert activity.order_id == order.id and activity.cum_qty == 5 and activity.leaves_qty == 0
    assert str(activity.price) == order.filled_avg_price and activity.transaction_time <= clock.now()


async def test_the_rest_of_the_trading_api_parses(fake: FakeAlpaca) -> None:
    trading, _ = clients(fake)
    limit = LimitOrderRequest(
        symbol="MSFT", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=300.0, client_order_id="r0"
    )
    first = await sdk(trading.submit_order, limit)
    new = await sdk(trading.replace_order_by_id, first.id, ReplaceOrderRequest(limit_price=301.5, client_order_id="r1"))
    assert new.replaces == first.id and new.limit_price == "301.5" and new.client_order_id == "r1"
    old = await sdk(trading.get_order_by_client_id, "r0")
    assert old.status is OrderStatus.REPLACED and old.replaced_by == new.id
    cancelled = await sdk(trading.cancel_orders)
    assert [c.id for c in cancelled] == [new.id] and cancelled[0].status == 200
    await sdk(trading.submit_order, market("SPY", 4, "c0"))
    await until(lambda: fake.exchange.engine.position("SPY") is not None, timeout=20, what="SPY bought")
    assert (await sdk(trading.get_open_position, "SPY")).qty == "4"
    half = await sdk(trading.close_position, "SPY", ClosePositionRequest(percentage="50"))
    assert half.side is OrderSide.SELL and half.qty == "2"
    await until(lambda: fake.exchange.engine.position("SPY").qty == 2, timeout=20, what="half sold")  # type: ignore[union-attr]
    closed = await sdk(trading.close_all_positions, True)
    assert [c.symbol for c in closed] == ["SPY"] and closed[0].status == 200
    with pytest.raises(APIError) as err:
        await sdk(trading.get_order_by_id, uuid.uuid4())
    assert err.value.status_code == 404 and err.value.code == 40410000
    market_clock = await sdk(trading.get_clock)
    assert market_clock.is_open and market_clock.next_close == ny(16, 0)
    days = await sdk(trading.get_calendar, GetCalendarRequest(start=date(2024, 11, 25), end=date(2024, 12, 2)))
    assert [d.date.day for d in days] == [25, 26, 27, 29, 2]
    assert days[3].close == datetime(2024, 11, 29, 13, 0)  # the early close, as the SDK reads "HH:MM"
    by_symbol = await sdk(trading.get_asset, "AAPL")
    assert (await sdk(trading.get_asset, by_symbol.id)).symbol == "AAPL" and by_symbol.exchange is AssetExchange.NASDAQ


async def test_the_data_calls_parse_and_never_look_ahead(fake: FakeAlpaca, clock: VirtualClock) -> None:
    _, data = clients(fake)
    await until(lambda: fake.exchange.ticks_processed > 30, timeout=20, what="the session printing")
    snap = (await sdk(data.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols="AAPL")))["AAPL"]
    assert snap.latest_trade is not None and snap.latest_quote is not None and snap.daily_bar is not None
    assert snap.latest_quote.ask_price - snap.latest_quote.bid_price == pytest.approx(0.01)
    assert snap.daily_bar.timestamp.astimezone(NEW_YORK).date() == date(2024, 11, 26)
    assert snap.previous_daily_bar is not None and snap.previous_daily_bar.close == 232.87
    minute = await sdk(
        data.get_stock_bars, StockBarsRequest(symbol_or_symbols=SYMBOLS, timeframe=TimeFrame.Minute, start=ny(9, 30))
    )
    answered = clock.now()  # the clock runs during a call: "ahead" means after the answer, not before the ask
    for symbol in SYMBOLS:
        bars = minute.data[symbol]
        assert bars[0].timestamp == ny(9, 30) and bars[-1].timestamp <= answered and len(bars) >= 30
    five = await sdk(
        data.get_stock_bars,
        StockBarsRequest(
            symbol_or_symbols="AAPL", timeframe=TimeFrame(5, TimeFrameUnit.Minute), start=datetime(2024, 11, 25, 14, 30)
        ),
    )
    assert len(five.data["AAPL"]) >= 78 + 6 and all(b.timestamp.minute % 5 == 0 for b in five.data["AAPL"])
    paged = await sdk(
        data.get_stock_bars,
        StockBarsRequest(symbol_or_symbols=["AAPL", "SPY"], timeframe=TimeFrame.Minute, start=ny(9, 30), limit=50),
    )
    assert sum(len(v) for v in paged.data.values()) == 50
    daily = await sdk(
        data.get_stock_bars,
        StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day, start=datetime(2024, 11, 18)),
    )
    bars = daily.data["AAPL"]
    assert [b.timestamp.astimezone(NEW_YORK).date().day for b in bars] == [18, 19, 20, 21, 22, 25, 26]
    assert bars[-2].close == 232.87 and bars[-1].volume < 45_000_000  # today so far, not the whole day
    trade = (await sdk(data.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols="SPY")))["SPY"]
    quote = (await sdk(data.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="SPY")))["SPY"]
    latest_bar = (await sdk(data.get_stock_latest_bar, StockLatestBarRequest(symbol_or_symbols="SPY")))["SPY"]
    answered = clock.now()
    assert trade.timestamp <= answered and quote.bid_price <= trade.price + 0.01 and latest_bar.timestamp <= answered


async def test_the_trade_updates_stream_of_the_sdk(fake: FakeAlpaca) -> None:
    env = fake.client_env()
    stream = TradingStream(env["ALPACA_API_KEY"], env["ALPACA_SECRET_KEY"], url_override=env["ALPACA_STREAM_URL"])
    events: list[TradeUpdate] = []

    async def on_update(update: TradeUpdate) -> None:
        events.append(update)

    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    await until(lambda: fake.trade_updates.sessions, timeout=10, what="the SDK listening")
    await until(lambda: all(s.listening for s in fake.trade_updates.sessions), timeout=10, what="listen")
    trading, _ = clients(fake)
    order = await sdk(trading.submit_order, market("MSFT", 7, "stream-1"))
    await until(lambda: [e.event for e in events] == ["new", "fill"], timeout=20, what="new then fill")
    fill = events[1]
    assert fill.order.id == order.id and fill.order.status is OrderStatus.FILLED and fill.qty == 7
    assert isinstance(fill.execution_id, uuid.UUID) and fill.position_qty == 7 and us.is_on_tick(fill.price or 0)
    await asyncio.to_thread(_stop, stream, thread)


async def test_the_market_data_stream_of_the_sdk(fake: FakeAlpaca) -> None:
    env = fake.client_env()
    stream = StockDataStream(
        env["ALPACA_API_KEY"], env["ALPACA_SECRET_KEY"], url_override=env["ALPACA_DATA_STREAM_URL"]
    )
    trades: list[SdkTrade] = []
    bars: list[SdkBar] = []

    async def on_trade(trade: Any) -> None:
        trades.append(trade)

    async def on_bar(bar: Any) -> None:
        bars.append(bar)

    stream.subscribe_trades(on_trade, "AAPL", "SPY")
    stream.subscribe_bars(on_bar, "AAPL")
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    await until(lambda: len(bars) >= 2 and {t.symbol for t in trades} == {"AAPL", "SPY"}, timeout=20, what="data")
    assert all(isinstance(t.timestamp, datetime) and us.is_on_tick(t.price) and t.size > 0 for t in trades)
    assert bars[0].symbol == "AAPL" and bars[0].timestamp.second == 0 and bars[0].low <= bars[0].high
    await asyncio.to_thread(stream.unsubscribe_trades, "SPY")
    mark = len(trades)
    await until(lambda: len(trades) > mark + 3, timeout=20, what="more AAPL trades")
    assert {t.symbol for t in trades[mark + 1 :]} == {"AAPL"}
    # a second connection of the same key is refused, as at Alpaca (raw msgpack client)
    async with websockets.connect(
        env["ALPACA_DATA_STREAM_URL"], additional_headers={"Content-Type": "application/msgpack"}
    ) as ws:
        assert msgpack.unpackb(await ws.recv())[0]["msg"] == "connected"
        await ws.send(
            msgpack.packb({"action": "auth", "key": env["ALPACA_API_KEY"], "secret": env["ALPACA_SECRET_KEY"]})
        )
        assert msgpack.unpackb(await ws.recv())[0] == {"T": "error", "code": 406, "msg": "connection limit exceeded"}
    await asyncio.to_thread(_stop, stream, thread)


def _stop(stream: Any, thread: threading.Thread) -> None:
    loop = stream._loop
    asyncio.run_coroutine_threadsafe(stream.stop_ws(), loop).result(5)
    asyncio.run_coroutine_threadsafe(stream.close(), loop).result(5)
    thread.join(10)
    assert not thread.is_alive()


async def test_keys_are_checked_and_errors_are_parsed_defensively(fake: FakeAlpaca) -> None:
    env = fake.client_env()
    wrong = TradingClient(env["ALPACA_API_KEY"], "not-the-secret", url_override=env["ALPACA_BASE_URL"])
    with pytest.raises(APIError) as err:
        await sdk(wrong.get_account)
    assert err.value.status_code == 401 and err.value.code == 40110000
    bare = await sdk(requests.get, env["ALPACA_BASE_URL"] + "/v2/account")
    assert bare.status_code == 403 and bare.json() == {"message": "forbidden."}
    gateway = APIError(bare.text)
    with pytest.raises(KeyError):
        _ = gateway.code  # the SDK's own accessor breaks on a body without "code"
    assert parse_body(bare.text) == (None, "forbidden.")
    assert parse_body("<html>504 Gateway Time-out</html>") == (None, "<html>504 Gateway Time-out</html>")
    async with websockets.connect(env["ALPACA_STREAM_URL"]) as ws:
        await ws.send(json.dumps({"action": "authenticate", "data": {"key_id": "x", "secret_key": "y"}}))
        assert json.loads(await ws.recv())["data"]["status"] == "unauthorized"


async def test_a_duplicate_client_order_id_is_a_422_and_places_nothing(fake: FakeAlpaca) -> None:
    trading, _ = clients(fake)
    await sdk(trading.submit_order, market("AAPL", 1, "dup-1"))
    with pytest.raises(APIError) as err:
        await sdk(trading.submit_order, market("AAPL", 1, "dup-1"))
    assert err.value.status_code == 422 and err.value.code == 40010001 and "unique" in err.value.message
    assert len(engine_orders(fake)) == 1


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        ({"kind": "after_accept", "status": 504, "count": 1}, 2),
        ({"kind": "after_accept", "status": 504, "count": 3}, 4),
        ({"kind": "status", "status": 504, "count": 2, "methods": ["POST"]}, 3),
        ({"kind": "status", "status": 429, "count": 3, "methods": ["POST"]}, 4),
    ],
    ids=["504-after-accept", "504-after-accept-x3", "504-storm", "429-storm"],
)
async def test_the_sdk_retry_of_a_submit_never_doubles_an_order_with_a_client_order_id(
    fake: FakeAlpaca, fault: dict[str, Any], attempts: int
) -> None:
    trading, _ = clients(fake)
    trading._retry_wait = 0  # the SDK's retry loop as shipped (3 more attempts on 429/504), without its 3 s sleeps
    assert trading._retry == 3 and trading._retry_codes == [429, 504]
    set_fault = await sdk(requests.post, fake.base_url + "/_fake/faults", None, fault)
    assert set_fault.status_code == 200
    try:
        order = await sdk(trading.submit_order, market("AAPL", 10, "retried-1"))
    except APIError as exc:  # the retry met the first attempt's order: Alpaca's duplicate-id 422
        assert exc.status_code == 422 and "client_order_id must be unique" in str(exc)
        assert fault["kind"] == "after_accept"
    else:
        assert fault["kind"] == "status" and order.client_order_id == "retried-1"
    assert len(posts(fake)) == attempts  # the SDK did retry the POST
    assert [o.client_order_id for o in engine_orders(fake)] == [str(fake.book.by_client["retried-1"])]
    assert fake.book.placed == 1


async def test_without_a_client_order_id_the_sdk_retry_doubles_the_order(fake: FakeAlpaca) -> None:
    """Why the client order id matters: the same 504-after-accept with no id places two orders."""
    trading, _ = clients(fake)
    trading._retry_wait = 0
    await sdk(requests.post, fake.base_url + "/_fake/faults", None, {"kind": "after_accept", "status": 504, "count": 1})
    await sdk(trading.submit_order, market("AAPL", 10))
    assert len(engine_orders(fake)) == 2 and len(posts(fake)) == 2
