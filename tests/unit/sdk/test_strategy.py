"""Strategy base without a server: decisions log, hook order, failing hooks (the rest runs against a real
OMS in tests/integration/sdk)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from broker_core.clock import KST, ManualClock
from strategies.sdk import Bar, OmsClient, Strategy
from strategies.sdk.stream import StreamClient


class Probe(Strategy):
    def __init__(self, oms: OmsClient, clock: ManualClock) -> None:
        super().__init__("kmp", oms, clock)
        self.calls: list[str] = []

    async def on_bar(self, bar: Bar) -> None:
        self.calls.append(f"bar {bar.start:%H:%M}")

    async def on_trade(self, event: dict[str, Any]) -> None:
        self.calls.append(f"trade {event['ts'][11:19]}")
        if event["price"] < 0:
            raise ValueError("bad tick")

    async def on_order(self, event: dict[str, Any]) -> None:
        self.calls.append(f"order {event['state']}")


def oms() -> OmsClient:
    return OmsClient(
        "http://oms.test", "k1", "KMP", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={}))
    )


def trade(hms: str, price: float = 100.0) -> dict[str, Any]:
    return {"type": "trade", "symbol": "005930", "price": price, "qty": 1, "ts": f"2026-02-27T{hms}+09:00"}


def order(state: str) -> dict[str, Any]:
    return {
        "type": "order",
        "order_id": "o1",
        "intent_id": "i1",
        "strategy_id": "KMP",
        "symbol": "005930",
        "side": "BUY",
        "qty": 1,
        "filled_qty": 0,
        "avg_fill_price": 0.0,
        "state": state,
        "limit_price": 100.0,
        "reason": None,
        "ts": "2026-02-27T09:01:00+09:00",
    }


async def test_decision_logs_one_structured_line_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    s = Probe(oms(), ManualClock(datetime(2026, 2, 27, 9, tzinfo=KST)))
    with caplog.at_level(logging.INFO, logger="strategy.KMP"):
        s.decision("KMP_OR_RANGE", "005930", or_pct=0.0612345, note="too wide")
        s.decision("KMP_OR_RANGE", "000660", or_pct=0.07)
    lines = [r.getMessage() for r in caplog.records if r.name == "strategy.KMP"]
    assert lines[0] == "decision code=KMP_OR_RANGE symbol=005930 or_pct=0.0612345 note='too wide'"
    assert caplog.records[0].decision == {
        "code": "KMP_OR_RANGE",
        "symbol": "005930",
        "or_pct": 0.0612345,
        "note": "too wide",
    }
    assert s.decision_counts == {"KMP_OR_RANGE": 2}
    assert s.status()["decisions"] == {"KMP_OR_RANGE": 2}
    await s.oms.aclose()


async def test_bar_before_trade_failing_hook_logged_and_orders_tracked(caplog: pytest.LogCaptureFixture) -> None:
    s = Probe(oms(), ManualClock(datetime(2026, 2, 27, 9, tzinfo=KST)))
    dispatch = s.stream.on_event  # what the stream calls for each event
    with caplog.at_level(logging.ERROR, logger="strategy.KMP"):
        await dispatch(trade("09:00:10"))
        await dispatch(trade("09:00:20", price=-1))
        await dispatch(trade("09:01:00"))
    assert s.calls == ["trade 09:00:10", "trade 09:00:20", "bar 09:00", "trade 09:01:00"]
    assert any("on_trade raised" in r.getMessage() for r in caplog.records)
    await dispatch(order("SUBMITTED"))
    assert list(s.open_orders) == ["o1"]
    await dispatch(order("FILLED"))
    assert s.open_orders == {}
    s.stopping = True
    await dispatch(trade("09:02:00"))
    assert s.calls[-1] == "order FILLED"
    await s.oms.aclose()


async def test_recover_sees_an_order_that_fills_between_its_two_reads() -> None:
    """The working BUY fills right after recover's first read: it must show as an open order or in the
    allocation (reading the allocations first showed it in neither, and the position went unmanaged)."""
    filled = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal filled
        if request.url.path == "/api/v1/orders":
            body: Any = [] if filled else [{**order("SUBMITTED"), "symbol": "000660"}]
        elif request.url.path == "/api/v1/allocations/KMP":
            body = {"000660": {"qty": 1, "cost_basis": 100.0}} if filled else {}
        else:
            return httpx.Response(200, json={})
        filled = True  # the OMS fills the order (ends it and raises the allocation in one step) after this read
        return httpx.Response(200, json=body)

    client = OmsClient("http://oms.test", "k1", "KMP", transport=httpx.MockTransport(handler))
    s = Probe(client, ManualClock(datetime(2026, 2, 27, 9, tzinfo=KST)))
    await s.recover()
    assert "000660" in s.allocations or any(o.symbol == "000660" for o in s.open_orders.values())
    assert "000660" in s.stream.symbols
    await s.oms.aclose()


class Recovering(Probe):
    def __init__(self, oms: OmsClient, clock: ManualClock) -> None:
        super().__init__(oms, clock)
        self.recovered: list[dict[str, int]] = []

    async def on_recover(self) -> None:
        self.recovered.append({s: a.qty for s, a in self.allocations.items()})


class QuietSocket:
    """A stream connection that sends nothing until closed; ``reading`` is set once the client reads it (after
    its ``on_connect`` ran)."""

    close_code = None

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.reading = asyncio.Event()

    async def send(self, message: str) -> None:
        return None

    async def close(self) -> None:
        self.closed.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str]:
        self.reading.set()
        await self.closed.wait()
        frames: tuple[str, ...] = ()
        for frame in frames:
            yield frame


async def _first_connection(allocations_at_connect: dict[str, Any]) -> list[dict[str, int]]:
    """Start a strategy on an OMS without allocations; before its stream first connects the OMS's allocations
    become ``allocations_at_connect``; what ``on_recover`` saw, once that connection is read."""
    allocations: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/allocations/KMP":
            return httpx.Response(200, json=allocations)
        if request.url.path == "/api/v1/orders":
            return httpx.Response(200, json=[])
        return httpx.Response(200, json={})

    socket, gate = QuietSocket(), asyncio.Event()

    @asynccontextmanager
    async def connect(url: str, **_: Any) -> AsyncIterator[QuietSocket]:
        await gate.wait()
        yield socket

    client = OmsClient("http://oms.test", "k1", "KMP", transport=httpx.MockTransport(handler), stream_connect=connect)
    s = Recovering(client, ManualClock(datetime(2026, 2, 27, 9, tzinfo=KST)))
    await s.start()
    allocations.update(allocations_at_connect)
    gate.set()
    await asyncio.wait_for(socket.reading.wait(), 5)
    await s.stop()
    await client.aclose()
    return s.recovered


async def test_a_close_during_the_handshake_closes_the_socket_that_opens_after_it() -> None:
    """A strategy stops while its stream's first handshake is in flight (``close`` finds no socket yet): the
    socket that opens afterwards is closed at once — it used to stay open until the stop's grace ran out."""
    socket, gate = QuietSocket(), asyncio.Event()

    @asynccontextmanager
    async def connect(url: str, **_: Any) -> AsyncIterator[QuietSocket]:
        await gate.wait()
        yield socket

    async def on_event(event: dict[str, Any]) -> None:
        return None

    stream = StreamClient("ws://oms.test/api/v1/stream", "k1", on_event=on_event, connect=connect)
    run = asyncio.create_task(stream.run())
    await asyncio.sleep(0)
    await stream.close()
    gate.set()
    await asyncio.wait_for(run, 30)  # the quiet socket never ends by itself
    assert not socket.reading.is_set() and stream.connects == 0


async def test_first_stream_connection_recovers_what_changed_since_the_start() -> None:
    """A BUY fills between the start's recovery and the first stream connection (the OMS never sends that fill):
    the first connection recovers again, as a reconnect does; with nothing changed it does not."""
    assert await _first_connection({"000660": {"qty": 3, "cost_basis": 100.0}}) == [{}, {"000660": 3}]
    assert await _first_connection({}) == [{}]


async def test_snapshot_fills_reads_again_until_the_allocations_stand_still() -> None:
    """A fill lands between the allocations read and the fills read: the snapshot is read again, so the fills
    returned are exactly those it holds."""
    fills = [
        {
            "execution_id": "e1",
            "order_id": "o1",
            "strategy_id": "KMP",
            "symbol": "005930",
            "side": "BUY",
            "qty": 2,
            "price": 100.0,
            "ts": "2026-02-27T08:59:59.500000+09:00",
        }
    ]
    allocations: dict[str, Any] = {"005930": {"qty": 2, "cost_basis": 100.0}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/allocations/KMP":
            return httpx.Response(200, json=allocations)
        if request.url.path == "/api/v1/fills":
            body = list(fills)
            if len(fills) == 1:  # the second BUY fills right after this first fills read
                fills.append({**fills[0], "execution_id": "e2", "ts": "2026-02-27T09:00:00.100000+09:00"})
                allocations["005930"] = {"qty": 4, "cost_basis": 100.0}
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=[])

    client = OmsClient("http://oms.test", "k1", "KMP", transport=httpx.MockTransport(handler))
    s = Probe(client, ManualClock(datetime(2026, 2, 27, 9, tzinfo=KST)))
    await s.recover()
    assert s.allocations["005930"].qty == 2
    held = await s.snapshot_fills(datetime(2026, 2, 27, 8, 59, 59, tzinfo=KST))
    assert [f.execution_id for f in held] == ["e1", "e2"] and s.allocations["005930"].qty == 4
    await client.aclose()
