"""The hub over a recording broker on a ManualClock: leases ↔ upstream, fan-out, windows, watchdog."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

from broker_core.clock import KST, ManualClock
from broker_core.errors import SubscriptionCapacityExceeded
from oms.marketdata import HubBrokerView, MarketDataHub, StreamBus, StreamConsumer
from oms.metrics import OmsMetrics
from oms.settings import LeaseConfig, MarketDataConfig
from tests.support.wait import until
from tests.unit.marketdata.fakes import RecordingBroker
from tests.unit.marketdata.test_slots import Positions, at, syms

LEASES = {
    "KMP": LeaseConfig(priority=30, max_slots=20, start="09:15", end="10:00"),
    "NULRIMOK": LeaseConfig(priority=20, max_slots=20, start="10:00"),
    "KPR": LeaseConfig(priority=20, max_slots=20),
    "PCIM": LeaseConfig(priority=0, max_slots=0),
}


def drain(c: StreamConsumer) -> list[Any]:
    out = []
    while (item := c.get_nowait()) is not None:
        out.append(json.loads(item) if isinstance(item, str) else item)
    return out


@asynccontextmanager
async def make_rig(
    stale_after_s: float = 3600,
) -> AsyncIterator[tuple[MarketDataHub, RecordingBroker, ManualClock, Positions]]:
    clock = ManualClock(at(9, 15))
    broker = RecordingBroker(40)
    pos = Positions()
    config = MarketDataConfig(leases=LEASES, stale_after_s=stale_after_s, check_interval_s=5, consumer_backlog=10_000)
    hub = MarketDataHub(
        broker,
        clock,
        StreamBus(config.consumer_backlog),
        config=config,
        metrics=OmsMetrics(),  # type: ignore[arg-type]
        position_holders=pos.holders,
        working_owners=pos.working_owners,
        market_open=lambda now: True,
    )
    await hub.start()
    try:
        yield hub, broker, clock, pos
    finally:
        await hub.stop()


@pytest.fixture
async def rig() -> AsyncIterator[tuple[MarketDataHub, RecordingBroker, ManualClock, Positions]]:
    async with make_rig() as r:
        yield r


async def test_reference_counting_releases_only_what_nobody_else_needs(rig: Any) -> None:
    hub, broker, clock, _ = rig
    a1 = hub.connect("KPR")
    a2 = hub.connect("KPR")  # a second socket of the same strategy
    b = hub.connect("KMP")
    assert (await hub.subscribe(a1, ["005930", "000660"]))[0] == ["005930", "000660"]
    assert (await hub.subscribe(a2, ["005930"]))[0] == ["005930"]
    assert (await hub.subscribe(b, ["005930", "035420"]))[0] == ["005930", "035420"]
    assert broker.subscribed == {"005930", "000660", "035420"} and hub.book.used == 3
    assert hub.book.shared() == {"005930": ["KMP", "KPR"]}
    assert broker.calls.count(("subscribe", ("005930",))) == 0 or broker.calls[0] == ("subscribe", ("000660", "005930"))

    await hub.unsubscribe(a1, ["005930", "000660"])
    assert broker.subscribed == {"005930", "035420"}  # 000660 had no other taker
    assert hub.book.holders("005930") == {"KPR", "KMP"}  # a2 still wants it for KPR
    await hub.disconnect(b)
    assert broker.subscribed == {"005930"} and hub.book.holders("005930") == {"KPR"}
    broker.push("005930", 70_000, at(9, 15, 1))
    await until(lambda: a2.market_backlog == 1, what="KPR's second socket still fed")
    assert a1.market_backlog == 0
    await hub.disconnect(a2)
    await hub.disconnect(a1)
    assert broker.subscribed == set() and hub.book.used == 0
    assert ("unsubscribe", ("005930",)) in broker.calls


async def test_hand_over_at_ten_is_driven_by_the_clock_and_never_over_capacity(rig: Any) -> None:
    hub, broker, clock, pos = rig
    kmp, kpr, nul = hub.connect("KMP"), hub.connect("KPR"), hub.connect("NULRIMOK")
    assert len((await hub.subscribe(kmp, syms("K", 20)))[0]) == 20
    assert len((await hub.subscribe(kpr, syms("P", 20)))[0]) == 20
    pos.held["K0001"] = {"KMP"}
    clock.set(at(9, 59, 59))
    granted, denied = await hub.subscribe(nul, ["N0000"])
    assert granted == [] and denied["N0000"][0] == "OUTSIDE_WINDOW"
    calls_before = len(broker.calls)
    clock.set(at(10, 0))  # no request: the housekeeping task wakes exactly at the window end
    await until(lambda: hub.book.leases_of("KMP") == {"K0001"}, what="KMP lease ended at 10:00")
    await until(lambda: len(broker.subscribed) == 21, what="upstream unsubscribed")
    events = [e for e in drain(kmp) if e.get("type") == "evicted"]
    assert events and events[0]["reason"] == "WINDOW_END" and len(events[0]["symbols"]) == 19
    granted, denied = await hub.subscribe(nul, syms("N", 20))
    assert len(granted) == 19 and [d[0] for d in denied.values()] == ["CAPACITY_FULL"]
    assert broker.max_seen == 40 and len(broker.subscribed) == 40
    after = broker.calls[calls_before:]
    assert after[0][0] == "unsubscribe" and len(after[0][1]) == 19
    assert after[1] == ("subscribe", tuple(sorted(syms("N", 19))))
    metrics = hub.metrics.render().decode()
    assert 'oms_marketdata_slot_events_total{event="expire",reason="WINDOW_END",strategy="KMP"} 19.0' in metrics
    assert 'oms_marketdata_slot_events_total{event="deny",reason="CAPACITY_FULL",strategy="NULRIMOK"} 1.0' in metrics


async def test_preemption_tells_the_evicted_strategy_and_keeps_protected_slots(rig: Any) -> None:
    hub, broker, clock, pos = rig
    hub.book.capacity = 3
    kpr, kmp = hub.connect("KPR"), hub.connect("KMP")
    await hub.subscribe(kpr, ["A", "B", "C"], keep=["C"])
    pos.held["A"] = {"KPR"}
    granted, denied = await hub.subscribe(kmp, ["X", "Y"])
    assert granted == ["X"] and denied == {"Y": (denied["Y"][0], denied["Y"][1])} and denied["Y"][0] == "CAPACITY_FULL"
    assert broker.subscribed == {"A", "C", "X"} and set(kpr.wants) == {"A", "C"}
    evicted = [e for e in drain(kpr) if e.get("type") == "evicted"]
    assert evicted == [
        {"type": "evicted", "symbols": ["B"], "reason": "PREEMPTED", "detail": "slot given to KMP (priority 30) for X"}
    ]


async def test_slow_consumer_is_conflated_never_stalls_the_feed_and_keeps_every_critical_event(rig: Any) -> None:
    hub, broker, clock, _ = rig
    fast = hub.connect("KPR")
    slow = hub.connect("KMP")
    slow.max_market_backlog = 10
    await hub.subscribe(fast, ["A", "B"])
    await hub.subscribe(slow, ["A", "B"])
    received: list[dict[str, Any]] = []

    async def read_fast() -> None:
        while True:
            item = await fast.get()
            received.append(json.loads(item) if isinstance(item, str) else item)

    reader = asyncio.create_task(read_fast())
    try:
        t0 = at(9, 20)
        for i in range(500):
            sym = "A" if i % 3 else "B"
            broker.push(sym, 1000 + i, t0 + timedelta(milliseconds=i))
            if i == 250:
                hub.bus.publish_strategy("KMP", {"type": "fill", "execution_id": "E1"})
        await until(lambda: hub.ticks_in == 500, what="every tick read")
        await until(lambda: len([e for e in received if e.get("type") == "trade"]) == 500, what="fast reader got all")
    finally:
        reader.cancel()
    prices = [e["price"] for e in received if e["type"] == "trade"]
    assert prices == [1000 + i for i in range(500)]  # every trade, in order across symbols
    items = drain(slow)
    assert items[0] == {"type": "fill", "execution_id": "E1"}  # critical first, never dropped
    trades = [e for e in items if e.get("type") == "trade"]
    assert len(trades) <= 12 and slow.conflated == 500 - len(trades)
    for sym, last in (("A", 1499), ("B", 1498)):  # latest wins, per symbol in order
        mine = [e["price"] for e in trades if e["symbol"] == sym]
        assert mine == sorted(mine) and mine[-1] == last


async def test_stale_upstream_is_reconnected_with_its_subscriptions() -> None:
    async with make_rig(stale_after_s=30) as rig:
        await _stale_upstream(*rig)


async def _stale_upstream(hub: MarketDataHub, broker: RecordingBroker, clock: ManualClock, _: Positions) -> None:
    c = hub.connect("KPR")
    await hub.subscribe(c, ["A", "B"])
    broker.push("A", 1, at(9, 15, 1))
    await until(lambda: hub.ticks_in == 1, what="first tick")
    broker.muted = True
    broker.calls.clear()
    for _ in range(8):  # 40 s of clock time in housekeeping steps, nothing arrives
        clock.advance(5)
        await asyncio.sleep(0)
    await until(lambda: hub.reconnects == 1, what="watchdog reconnect")
    assert broker.calls == [("unsubscribe", ("A", "B")), ("subscribe", ("A", "B"))]
    assert broker.subscribed == {"A", "B"} and broker.ticks_calls == 2
    gap = [e for e in drain(c) if e.get("type") == "gap"]
    assert gap and gap[0]["symbols"] == ["A", "B"] and gap[0]["reason"] == "UPSTREAM_STALE"
    broker.muted = False
    broker.push("B", 2, clock.now())
    await until(lambda: c.market_backlog == 1, what="ticks flow again after the reconnect")
    assert 'oms_marketdata_upstream_reconnects_total{reason="UPSTREAM_STALE"} 1.0' in hub.metrics.render().decode()


async def test_no_reconnect_while_the_market_is_closed() -> None:
    clock = ManualClock(datetime(2026, 2, 27, 8, 0, tzinfo=KST))
    broker = RecordingBroker(40)
    config = MarketDataConfig(stale_after_s=30, check_interval_s=5)
    hub = MarketDataHub(broker, clock, StreamBus(), config=config)  # type: ignore[arg-type]
    await hub.start()
    try:
        await hub.subscribe(hub.connect("KPR"), ["A"])
        for _ in range(11):  # a quiet hour before the open (KRX calendar: 2026-02-27 is a session)
            clock.advance(300)
            await asyncio.sleep(0)
            await hub.check()
        assert hub.reconnects == 0
        clock.set(datetime(2026, 2, 27, 9, 10, tzinfo=KST))
        await hub.check()  # first check after the open: a new baseline, not "stale since 08:55"
        assert hub.reconnects == 0
        clock.advance(31)
        await hub.check()
        assert hub.reconnects == 1
    finally:
        await hub.stop()


async def test_the_oms_watch_goes_through_the_budget(rig: Any) -> None:
    hub, broker, clock, _ = rig
    hub.book.capacity = 2
    view = HubBrokerView(broker, hub)  # type: ignore[arg-type]
    kpr = hub.connect("KPR")
    await hub.subscribe(kpr, ["A", "B"])
    await view.subscribe_ticks(["S"])  # the OMS outranks KPR: KPR's oldest idle slot (A) is evicted
    assert broker.subscribed == {"S", "B"}
    assert view.name == "recording"  # everything else delegates to the broker
    kmp = hub.connect("KMP")
    granted, denied = await hub.subscribe(kmp, ["S", "T", "U"])
    assert granted == ["S", "T"] and denied["U"][0] == "CAPACITY_FULL"  # T evicted B; S is the OMS's: kept
    assert broker.subscribed == {"S", "T"} and hub.book.holders("S") == {"_OMS", "KMP"}
    await hub.subscribe(kmp, [], keep=["T"])  # T is in an active setup now
    with pytest.raises(SubscriptionCapacityExceeded, match="CAPACITY_FULL"):
        await view.subscribe_ticks(["V"])
    assert broker.subscribed == {"S", "T"}
