"""StreamClient against a real OMS over WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from strategies.sdk import OmsAuthError, OmsClient, StreamClient
from tests.integration.sdk.conftest import KEYS, RunningOms, eventually


class Inbox:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind and all(e.get(k) == v for k, v in match.items())]


async def test_own_order_and_fill_events_and_subscribed_trades(oms_server: RunningOms) -> None:
    kmp, kpr = Inbox(), Inbox()
    stream = StreamClient(oms_server.ws_url, KEYS["KMP"], on_event=kmp, symbols=["005930"])
    other = StreamClient(oms_server.ws_url, KEYS["KPR"], on_event=kpr)
    tasks = [asyncio.create_task(stream.run()), asyncio.create_task(other.run())]
    try:
        await eventually(lambda: "005930" in stream.granted, what="subscription granted")
        assert stream.last_answer == {"type": "subscribed", "granted": ["005930"], "denied": {}}
        await eventually(lambda: other.connected, what="second stream connected")
        async with OmsClient(oms_server.url, KEYS["KMP"], "KMP") as oms:
            reply = await oms.enter("005930", 1)
        assert reply.ok and reply.order_id
        await eventually(lambda: kmp.of("fill", order_id=reply.order_id), what="own fill event")
        await eventually(lambda: kmp.of("order", order_id=reply.order_id, state="FILLED"), what="FILLED order event")
        await eventually(lambda: len(kmp.of("trade", symbol="005930")) >= 3, what="trades of 005930")
        assert {e["symbol"] for e in kmp.of("trade")} == {"005930"}
        order_events = kmp.of("order", order_id=reply.order_id)
        assert order_events[0]["state"] in ("SUBMITTED", "PENDING_SUBMIT", "PARTIALLY_FILLED", "FILLED")
        assert kpr.of("order") == [] and kpr.of("fill") == [] and kpr.of("trade") == []
        trades = kmp.of("trade")
        assert [e["ts"] for e in trades] == sorted(e["ts"] for e in trades)
    finally:
        await stream.close()
        await other.close()
        await asyncio.gather(*tasks)


async def test_reconnects_after_server_close_and_resubscribes(oms_server: RunningOms) -> None:
    inbox = Inbox()
    connects: list[int] = []

    async def on_connect(count: int) -> None:
        connects.append(count)

    stream = StreamClient(
        oms_server.ws_url,
        KEYS["KMP"],
        on_event=inbox,
        symbols=["005930"],
        on_connect=on_connect,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    task = asyncio.create_task(stream.run())
    try:
        await eventually(lambda: "005930" in stream.granted and inbox.of("trade"), what="first trades")
        assert await oms_server.switch.close_all() == 1
        await eventually(lambda: stream.connects == 2 and stream.answers == 2, what="reconnect and resubscribe")
        assert connects == [1, 2]
        assert stream.granted == {"005930"}
        seen = len(inbox.events)
        await eventually(
            lambda: len(inbox.of("trade", symbol="005930")) > 0 and len(inbox.events) > seen,
            what="trades after the reconnect",
        )

        await stream.subscribe(["000660"])
        await eventually(lambda: "000660" in stream.granted, what="live subscribe granted")
        await eventually(lambda: inbox.of("trade", symbol="000660"), what="trades of the added symbol")
        await stream.unsubscribe(["005930"])
        assert stream.symbols == {"000660"} and stream.granted == {"000660"}

        assert await oms_server.switch.close_all() == 1
        await eventually(lambda: stream.connects == 3 and stream.answers == 4, what="second reconnect")
        assert stream.last_answer == {"type": "subscribed", "granted": ["000660"], "denied": {}}
    finally:
        await stream.close()
        await task


async def test_denied_symbols_are_reported(oms_server: RunningOms) -> None:
    stream = StreamClient(oms_server.ws_url, KEYS["KMP"], on_event=Inbox(), symbols=["005930", "999999"])
    task = asyncio.create_task(stream.run())
    try:
        await eventually(lambda: stream.answers, what="subscribe answer")
        assert stream.granted == {"005930"}
        assert stream.denied == {"999999": "UNKNOWN_SYMBOL"}
    finally:
        await stream.close()
        await task


async def test_a_refused_key_is_final(oms_server: RunningOms) -> None:
    stream = StreamClient(oms_server.ws_url, "wrong-key", on_event=Inbox())
    with pytest.raises(OmsAuthError, match="HTTP 403"):
        await asyncio.wait_for(stream.run(), timeout=30)
