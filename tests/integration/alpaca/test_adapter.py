"""The Alpaca adapter (the Broker protocol on alpaca-py) against the fake Alpaca."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest

from broker_core.alpaca.adapter import AlpacaBroker, wire_client_id
from broker_core.alpaca.errors import InvalidOrder
from broker_core.alpaca.fake import FakeAlpaca
from broker_core.alpaca.settings import AlpacaConfigError, AlpacaSettings
from broker_core.broker import Broker
from broker_core.clock import VirtualClock
from broker_core.errors import BrokerUnavailable, OrderRejected, OutcomeUnknown, SubscriptionCapacityExceeded
from broker_core.logging_setup import MaskSecrets
from broker_core.markets import us
from broker_core.models import OrderRequest, OrderStatus, OrderType, Side, Tick
from tests.integration.alpaca.conftest import Collector, engine_orders, ny, posts, settings


async def test_orders_fills_positions_and_account_through_the_protocol(
    fake: FakeAlpaca, broker: AlpacaBroker, clock: VirtualClock
) -> None:
    assert isinstance(broker, Broker) and broker.stream_connects == 1
    updates = Collector(broker.order_updates())
    order = await broker.submit_order(OrderRequest("oms-1", "AAPL", Side.BUY, 12, OrderType.MARKET))
    assert order.client_order_id == "oms-1" and order.status is OrderStatus.NEW
    assert order.broker_order_id == fake.book.by_client["oms-1"]
    [fill] = await updates.until_filled(12)
    assert fill.execution_id == f"ALPACA-{order.broker_order_id}-12" and fill.client_order_id == "oms-1"
    assert broker.fills_from_stream == 1 and us.is_on_tick(fill.price)
    assert [u.order.status for u in updates.updates] == [OrderStatus.NEW, OrderStatus.FILLED]
    assert await broker.list_fills() == [fill]
    assert broker.fills_from_poll == 0  # the poll found nothing the stream had not handed out
    again = await broker.submit_order(OrderRequest("oms-1", "AAPL", Side.BUY, 12, OrderType.MARKET))
    assert again.status is OrderStatus.FILLED and len(engine_orders(fake)) == 1 and len(posts(fake)) == 1
    [pos] = await broker.get_positions()
    assert (pos.symbol, pos.qty, pos.avg_price) == ("AAPL", 12, fill.price)
    acct = await broker.get_account()
    assert acct.currency == "USD" and acct.cash == pytest.approx(100_000 - 12 * fill.price, abs=0.01)
    assert acct.market_value > 0

    resting = await broker.submit_order(OrderRequest("oms-2", "SPY", Side.BUY, 3, OrderType.LIMIT, 500.0))
    assert [o.client_order_id for o in await broker.list_open_orders()] == ["oms-2"]
    cancelled = await broker.cancel_order("oms-2")
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.broker_order_id == resting.broker_order_id
    with pytest.raises(OrderRejected) as err:
        await broker.cancel_order("oms-2")
    assert err.value.code == "ALREADY_FINAL"
    assert await broker.get_order("never-sent") is None and await broker.list_open_orders() == []

    marketable = await broker.submit_order(OrderRequest("oms-3", "MSFT", Side.BUY, 2, OrderType.MARKETABLE_LIMIT))
    quote = await broker.get_quote("MSFT")
    assert marketable.order_type is OrderType.LIMIT and marketable.limit_price is not None
    assert marketable.limit_price >= quote.last and us.is_on_tick(marketable.limit_price)
    await updates.until_filled(14)


async def test_market_data_quotes_bars_and_ticks(fake: FakeAlpaca, broker: AlpacaBroker, clock: VirtualClock) -> None:
    quote = await broker.get_quote("AAPL")
    assert quote.ask is not None and quote.bid is not None and round(quote.ask - quote.bid, 4) == 0.01
    assert quote.prev_close == 232.87 and quote.volume > 0 and quote.ts <= clock.now()
    bars = await broker.get_bars("AAPL", ny(9, 30), clock.now())
    assert bars[0].ts == ny(9, 30) and len(bars) >= 30 and all(b.interval == "1m" for b in bars)
    hourly = await broker.get_bars("SPY", ny(9, 0), clock.now(), "1h")
    minutes = await broker.get_bars("SPY", ny(9, 30), ny(9, 59))
    assert hourly[0].ts == ny(9, 0) and hourly[0].volume == sum(b.volume for b in minutes) > 0
    daily = await broker.get_daily_bars("AAPL", date(2024, 11, 20), date(2024, 11, 26))
    assert [b.ts.day for b in daily] == [20, 21, 22, 25, 26] and daily[-2].close == 232.87

    ticks = broker.ticks()
    got: list[Tick] = []

    async def collect(n: int) -> None:
        async for t in ticks:
            got.append(t)
            if len(got) >= n:
                return

    await broker.subscribe_ticks(["AAPL", "MSFT"])
    await asyncio.wait_for(collect(6), 20)
    assert {t.symbol for t in got} <= {"AAPL", "MSFT"} and all(t.ts <= clock.now() for t in got)
    await broker.unsubscribe_ticks(["MSFT"])
    got.clear()
    await asyncio.wait_for(collect(4), 20)
    assert {t.symbol for t in got[1:]} == {"AAPL"}
    assert broker.subscribed == {"AAPL"}
    with pytest.raises(SubscriptionCapacityExceeded):
        await broker.subscribe_ticks([f"S{i}" for i in range(40)])
    assert broker.subscribed == {"AAPL"}


@pytest.mark.parametrize(
    ("request_", "field", "code"),
    [
        (OrderRequest("bad-1", "ZZZZ", Side.BUY, 1, OrderType.MARKET), "symbol", "UNKNOWN_SYMBOL"),
        (OrderRequest("bad-2", "AAPL", Side.BUY, 0, OrderType.MARKET), "qty", "INVALID_QTY"),
        (OrderRequest("bad-3", "AAPL", Side.BUY, 2.5, OrderType.MARKET), "qty", "FRACTIONAL_QTY"),  # type: ignore[arg-type]
        (OrderRequest("bad-4", "AAPL", Side.BUY, 1, OrderType.LIMIT, 230.005), "limit_price", "OFF_TICK"),
        (OrderRequest("bad-5", "AAPL", Side.BUY, 1, OrderType.LIMIT, None), "limit_price", "INVALID_PRICE"),
        (OrderRequest("", "AAPL", Side.BUY, 1, OrderType.MARKET), "client_order_id", "INVALID_ORDER"),
    ],
    ids=["unknown-symbol", "qty-0", "fractional", "off-tick", "no-price", "no-client-id"],
)
async def test_bad_input_is_refused_naming_the_field_before_anything_is_sent(
    fake: FakeAlpaca, broker: AlpacaBroker, request_: OrderRequest, field: str, code: str
) -> None:
    with pytest.raises(InvalidOrder) as err:
        await broker.submit_order(request_)
    assert (err.value.field, err.value.code) == (field, code) and err.value.message.startswith(f"{field}: ")
    assert isinstance(err.value, OrderRejected)
    assert posts(fake) == [] and engine_orders(fake) == []


async def test_orders_outside_the_session_are_refused_before_sending(us_data: Any, fake: FakeAlpaca) -> None:
    late = VirtualClock(ny(17, 30), speed=1)
    b = AlpacaBroker(settings(fake), clock=late)
    await b.load_assets()
    try:
        with pytest.raises(InvalidOrder) as err:
            await b.submit_order(OrderRequest("late-1", "AAPL", Side.BUY, 1, OrderType.LIMIT, 230.0))
        assert err.value.field == "time" and "AFTER_HOURS" in err.value.message  # extended hours are off
        ext = AlpacaBroker(settings(fake, ALPACA_EXTENDED_HOURS="true"), clock=VirtualClock(ny(8, 0), speed=1))
        with pytest.raises(InvalidOrder) as err:
            await ext.submit_order(OrderRequest("pre-1", "AAPL", Side.BUY, 1, OrderType.MARKET))
        assert err.value.field == "order_type"
        await ext.close()
    finally:
        await b.close()
    assert posts(fake) == []


def test_settings_read_the_named_variables_and_never_show_the_secret() -> None:
    env = {"ACCT1_KEY": "PKLIVEKEY123456", "ACCT1_SECRET": "s3cr3t-value-xyz", "ALPACA_BASE_URL": "http://h:1"}
    s = AlpacaSettings.from_env(env, key_env="ACCT1_KEY", secret_env="ACCT1_SECRET")
    assert (s.api_key, s.secret_key) == ("PKLIVEKEY123456", "s3cr3t-value-xyz")
    assert s.stream_url == "ws://h:1/stream" and s.data_stream_url == "wss://stream.data.alpaca.markets/v2/iex"
    shown = repr(s) + str(s) + repr(AlpacaBroker(s))
    assert "PKLIVEKEY123456" not in shown and "s3cr3t-value-xyz" not in shown and "ACCT1_KEY" in shown
    with pytest.raises(AlpacaConfigError, match="ACCT1_SECRET: not set"):
        AlpacaSettings.from_env({"ACCT1_KEY": "k"}, key_env="ACCT1_KEY", secret_env="ACCT1_SECRET")
    with pytest.raises(AlpacaConfigError, match="ALPACA_PAPER"):
        AlpacaSettings.from_env({**env, "ALPACA_PAPER": "maybe"}, key_env="ACCT1_KEY", secret_env="ACCT1_SECRET")
    live = AlpacaSettings.from_env({"ALPACA_API_KEY": "k" * 8, "ALPACA_SECRET_KEY": "s" * 8, "ALPACA_PAPER": "false"})
    assert live.base_url == "https://api.alpaca.markets" and live.stream_url == "wss://api.alpaca.markets/stream"


async def test_the_keys_never_reach_the_log(fake: FakeAlpaca, clock: VirtualClock, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    b = AlpacaBroker(settings(fake), clock=clock)
    await b.connect()
    await b.submit_order(OrderRequest("log-1", "AAPL", Side.BUY, 1, OrderType.MARKET))
    await b.close()
    masker = MaskSecrets()
    text = "\n".join(masker.mask(r.getMessage()) for r in caplog.records)
    assert text and fake.api_key not in text and fake.secret_key not in text


def test_client_order_ids_alpaca_cannot_take_are_sent_as_a_stable_hash() -> None:
    assert wire_client_id("KMP-20241126-0001") == "KMP-20241126-0001"
    long = "x" * 129
    assert wire_client_id(long) == wire_client_id(long) and len(wire_client_id(long)) == 50
    assert wire_client_id("주문-1") != wire_client_id("주문-2") and wire_client_id("주문-1").isascii()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    conns: list[Any] = []

    async def hold(reader: Any, writer: Any) -> None:
        conns.append(writer)
        await reader.read(1 << 16)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for w in conns:
            w.close()


async def test_every_request_has_our_deadline(silent_server: int, clock: VirtualClock) -> None:
    base = f"http://127.0.0.1:{silent_server}"
    env = {
        "ALPACA_API_KEY": "PKSILENT00001",
        "ALPACA_SECRET_KEY": "silent-secret-0001",
        "ALPACA_BASE_URL": base,
        "ALPACA_DATA_URL": base,
        "ALPACA_REQUEST_TIMEOUT_S": "0.5",
        "ALPACA_ORDER_LOOKUP_WINDOW_S": "0",
    }
    b = AlpacaBroker(AlpacaSettings.from_env(env), clock=clock)
    b._assets = {"AAPL": (True, False)}
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await b.get_account()
    with pytest.raises(OutcomeUnknown) as err:
        await b.submit_order(OrderRequest("hang-1", "AAPL", Side.BUY, 1, OrderType.MARKET))
    assert err.value.client_order_id == "hang-1"
    assert time.monotonic() - started < 6  # three calls (account, submit, one lookup), each cut at ~0.5-1 s
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = AlpacaBroker(
        AlpacaSettings.from_env({**env, "ALPACA_BASE_URL": f"http://127.0.0.1:{closed_port}"}), clock=clock
    )
    with pytest.raises(BrokerUnavailable, match="cannot connect"):
        await refused.get_account()
    await b.close()
    await refused.close()
