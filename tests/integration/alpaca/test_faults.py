"""Reliability of the Alpaca adapter under the fake's faults: each test states what it tried and asserts that
no order was doubled and no fill lost (orders counted at the paper exchange, fills by execution id)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import requests

from broker_core.alpaca.adapter import AlpacaBroker
from broker_core.alpaca.fake import FakeAlpaca
from broker_core.clock import VirtualClock
from broker_core.errors import OutcomeUnknown, RateLimited
from broker_core.models import BrokerOrder, OrderRequest, OrderType, Side
from tests.integration.alpaca.conftest import Collector, engine_orders, posts, settings
from tests.support.wait import until

ORDERS = [("AAPL", 5), ("SPY", 3), ("MSFT", 4), ("AAPL", 2), ("SPY", 6), ("MSFT", 1), ("AAPL", 7), ("SPY", 1)]


async def fault(fake: FakeAlpaca, body: dict[str, Any]) -> None:
    reply = await asyncio.to_thread(requests.post, fake.base_url + "/_fake/faults", None, body)
    assert reply.status_code == 200, reply.text


def by_client(fake: FakeAlpaca) -> Counter[str]:
    """How many orders the exchange holds per client order id."""
    return Counter(fake.book.orders[o.client_order_id].client_order_id for o in engine_orders(fake))


async def assert_fills_complete(fake: FakeAlpaca, broker: AlpacaBroker, updates: Collector, total: int) -> None:
    fills = await updates.until_filled(total)
    ids = [f.execution_id for f in fills]
    assert len(ids) == len(set(ids)), "a fill was handed out twice"
    assert sum(f.qty for f in fills) == total == sum(f.qty for f in fake.exchange.engine.fills())
    assert sorted(ids) == sorted(f.execution_id for f in await broker.list_fills())
    held = {p.symbol: p.qty for p in await broker.get_positions()}
    bought = Counter[str]()
    for f in fills:
        bought[f.symbol] += f.qty
    assert held == dict(bought)


async def test_a_504_after_accept_storm_doubles_no_order_and_loses_no_fill(
    fake: FakeAlpaca, broker: AlpacaBroker
) -> None:
    """Every submit is placed at the exchange and answered 504 (HTML body): each is found by client order id."""
    updates = Collector(broker.order_updates())
    await fault(fake, {"kind": "after_accept", "status": 504, "until_cleared": True})
    requests_ = [OrderRequest(f"storm-{i}", s, Side.BUY, q, OrderType.MARKET) for i, (s, q) in enumerate(ORDERS)]
    placed = await asyncio.gather(*(broker.submit_order(r) for r in requests_))
    assert [o.client_order_id for o in placed] == [r.client_order_id for r in requests_]
    assert fake.faults.counts["after_accept"] == len(ORDERS) == len(posts(fake))  # nothing was re-sent
    assert by_client(fake) == Counter(r.client_order_id for r in requests_)
    await assert_fills_complete(fake, broker, updates, sum(q for _, q in ORDERS))


async def test_a_429_storm_places_each_order_once(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    """Submits meet 429s (not acted on); the caller retries after retry_after; lookups also meet 429s."""
    updates = Collector(broker.order_updates())
    await fault(fake, {"kind": "status", "status": 429, "count": 5, "methods": ["POST"]})
    limited = 0
    for i, (symbol, qty) in enumerate(ORDERS[:4]):
        while True:
            try:
                await broker.submit_order(OrderRequest(f"rl-{i}", symbol, Side.BUY, qty, OrderType.MARKET))
                break
            except RateLimited as exc:
                limited += 1
                assert exc.retry_after == 1.0
                await asyncio.sleep(0.01)
    assert limited == 5 and len(posts(fake)) == 9
    # a lost answer whose lookups are rate-limited too: the adapter keeps looking within its window
    await fault(fake, {"kind": "after_accept", "status": 504, "count": 1})
    await fault(fake, {"kind": "status", "status": 429, "count": 3, "paths": ["/v2/orders:by_client_order_id"]})
    found = await broker.submit_order(OrderRequest("rl-4", "MSFT", Side.BUY, 2, OrderType.MARKET))
    assert found.client_order_id == "rl-4" and fake.faults.counts["status"] == 8
    assert by_client(fake) == Counter([f"rl-{i}" for i in range(5)])
    await assert_fills_complete(fake, broker, updates, sum(q for _, q in ORDERS[:4]) + 2)


async def test_a_5xx_before_the_order_was_taken_is_unknown_then_resent_once(
    fake: FakeAlpaca, clock: VirtualClock
) -> None:
    """A 502 storm on submit (not acted on): the outcome is unknown, the lookup finds nothing within the window,
    the caller looks again and re-sends the same client order id: one order."""
    broker = AlpacaBroker(settings(fake, ALPACA_ORDER_LOOKUP_WINDOW_S="20"), clock=clock)
    await broker.connect()
    try:
        await fault(fake, {"kind": "status", "status": 502, "count": 1, "methods": ["POST"]})
        request = OrderRequest("x5-1", "AAPL", Side.BUY, 3, OrderType.MARKET)
        try:
            await broker.submit_order(request)
            raise AssertionError("the 502 should leave the outcome unknown")
        except OutcomeUnknown as exc:
            assert exc.client_order_id == "x5-1" and "not found by client_order_id" in exc.message
        assert await broker.get_order("x5-1") is None and engine_orders(fake) == []
        order = await broker.submit_order(request)
        assert order.client_order_id == "x5-1" and by_client(fake) == Counter(["x5-1"])
    finally:
        await broker.close()


async def test_an_order_that_shows_late_is_found_by_the_lookup(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    """504 after accept, and the new order stays out of the order queries for 20 s (fake clock) from its acceptance.

    The fake logs a request at its arrival and judges visibility while handling it, so the lookup that finds the
    order may have arrived up to one request's handling before the 20 s were up (a virtual second is 17 ms of wall
    at 60×); the first lookup comes after the 504's round trip, so it is not where the 20 s start."""
    await fault(fake, {"kind": "delay_visibility", "seconds": 20, "count": 1})
    await fault(fake, {"kind": "after_accept", "status": 504, "count": 1})
    order: BrokerOrder = await broker.submit_order(OrderRequest("late-1", "SPY", Side.BUY, 2, OrderType.MARKET))
    lookups = [r for r in fake.request_log if r.path == "/v2/orders:by_client_order_id"]
    assert order.client_order_id == "late-1" and [r.status for r in lookups][0] == 404 and lookups[-1].status == 200
    assert all(r.status == 404 for r in lookups[:-1])
    assert (lookups[-1].at - posts(fake)[0].at).total_seconds() >= 20 - 1
    assert by_client(fake) == Counter(["late-1"]) and len(posts(fake)) == 1


async def test_the_stream_dropped_mid_fill_loses_no_fill(fake: FakeAlpaca, broker: AlpacaBroker) -> None:
    """The first three fill events are not sent: each closes every trade_updates connection instead. The SDK
    reconnects; the adapter polls the FILL activities at each reconnect and on its interval."""
    updates = Collector(broker.order_updates())
    await fault(fake, {"kind": "drop_stream", "stream": "trade_updates", "on_event": "fill", "count": 3})
    for i, (symbol, qty) in enumerate(ORDERS[:6]):
        await broker.submit_order(OrderRequest(f"drop-{i}", symbol, Side.BUY, qty, OrderType.MARKET))
    await assert_fills_complete(fake, broker, updates, sum(q for _, q in ORDERS[:6]))
    assert fake.faults.counts["drop_stream"] == 3 and fake.trade_updates.dropped >= 1
    assert broker.fills_from_poll >= 1 and broker.fills_from_stream + broker.fills_from_poll == 6
    await until(lambda: broker.stream_connects >= 2, timeout=10, what="trade_updates reconnected")
    assert by_client(fake) == Counter(f"drop-{i}" for i in range(6))
    seen = broker.stream_connects
    await fault(fake, {"kind": "drop_stream", "stream": "all"})  # cut now, over HTTP
    await until(lambda: broker.stream_connects > seen, timeout=10, what="reconnected after the cut")


async def test_with_the_sdk_retry_left_on_a_504_after_accept_is_still_one_order(
    fake: FakeAlpaca, clock: VirtualClock
) -> None:
    """alpaca-py's own retry re-sends the POST after the 504; Alpaca's 422 duplicate tells the adapter to look."""
    broker = AlpacaBroker(settings(fake), clock=clock, sdk_retries=True)
    broker.trading._retry_wait = 0
    await broker.connect()
    try:
        await fault(fake, {"kind": "after_accept", "status": 504, "count": 1})
        order = await broker.submit_order(OrderRequest("sdk-r1", "AAPL", Side.BUY, 4, OrderType.MARKET))
        assert order.client_order_id == "sdk-r1" and len(posts(fake)) == 2
        assert [r.status for r in posts(fake)] == [504, 422]
        assert by_client(fake) == Counter(["sdk-r1"])
    finally:
        await broker.close()
