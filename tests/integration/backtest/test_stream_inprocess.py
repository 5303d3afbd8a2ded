"""The SDK's StreamClient over the in-process WebSocket (no socket): the handshake, both directions, a refusal
at the handshake as a real server's, and the server's close."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect, status

from strategies.sdk.errors import OmsAuthError
from strategies.sdk.stream import StreamClient
from trader.backtest.asgi_stream import AsgiStreamConnect

KEY = "good-key-0001"


def stream_app(closed: list[int]) -> FastAPI:
    app = FastAPI()

    @app.websocket("/api/v1/stream")
    async def stream(ws: WebSocket) -> None:
        if ws.headers.get("authorization") != f"Bearer {KEY}":
            await ws.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        await ws.accept()
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                if msg.get("op") == "subscribe":
                    await ws.send_text(json.dumps({"type": "subscribed", "granted": msg["symbols"], "denied": {}}))
                    for symbol in msg["symbols"]:
                        await ws.send_text(json.dumps({"type": "trade", "symbol": symbol, "price": 100.0, "qty": 1}))
                elif msg.get("op") == "bye":
                    await ws.close()
                    return
        except WebSocketDisconnect as exc:
            closed.append(exc.code)

    return app


async def test_subscribe_and_events_flow_both_ways_and_close_reaches_the_app() -> None:
    closed: list[int] = []
    events: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        got.set()

    client = StreamClient(
        "ws://oms.backtest/api/v1/stream",
        KEY,
        on_event=on_event,
        symbols=["005930"],
        connect=AsgiStreamConnect(stream_app(closed)),
    )
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(got.wait(), 5)
    assert client.connected and client.granted == {"005930"}
    assert events == [{"type": "trade", "symbol": "005930", "price": 100.0, "qty": 1}]
    await client.close()
    await asyncio.wait_for(task, 5)
    assert closed == [1000] and not client.connected


async def test_a_refused_handshake_is_an_auth_error_as_over_a_real_socket() -> None:
    async def on_event(event: dict[str, Any]) -> None: ...

    client = StreamClient(
        "ws://oms.backtest/api/v1/stream", "wrong-key", on_event=on_event, connect=AsgiStreamConnect(stream_app([]))
    )
    with pytest.raises(OmsAuthError, match="403"):
        await asyncio.wait_for(client.run(), 5)


async def test_the_servers_close_ends_the_connection_and_send_after_it_raises_closed() -> None:
    from websockets.exceptions import ConnectionClosed

    connect = AsgiStreamConnect(stream_app([]))
    async with connect("ws://oms.backtest/api/v1/stream", additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        await ws.send(json.dumps({"op": "bye"}))
        frames = [frame async for frame in ws]
        assert frames == [] and ws.close_code == 1000
        with pytest.raises(ConnectionClosed):
            await ws.send("{}")
