"""WS /api/v1/stream: per-strategy order/fill events and subscribed market data.

Client → server: ``{"op":"subscribe","symbols":[...],"channels":["trades","quotes"]}`` or
``{"op":"unsubscribe","symbols":[...]}``; server → client: ``{"type":"subscribed","granted":[...],
"denied":{symbol: reason}}`` then ``trade``/``quote``/``order``/``fill`` events as JSON.
Auth: ``Authorization: Bearer <key>`` on the handshake (or ``?api_key=`` for tools that cannot set it).
"""
from __future__ import annotations

import asyncio
import json
from contextlib import suppress

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from oms.runtime import OmsRuntime

router = APIRouter()


@router.websocket("/api/v1/stream")
async def stream(ws: WebSocket) -> None:
    header = ws.headers.get("authorization", "")
    key = header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else ws.query_params.get("api_key", "")
    who = ws.app.state.keys.lookup(key) if key else None
    rt: OmsRuntime | None = getattr(ws.app.state, "runtime", None)
    if who is None or rt is None:
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason="invalid API key" if rt else "starting")
        return
    await ws.accept()
    sub = rt.bus.subscribe(who.strategy_id if who.role == "strategy" and who.strategy_id else "*")

    async def pump() -> None:
        while True:
            await ws.send_text(json.dumps(await sub.get(), default=str))

    writer = asyncio.create_task(pump())
    try:
        while True:
            try:
                msg = json.loads(await ws.receive_text())
            except json.JSONDecodeError:
                await ws.send_text(json.dumps({"type": "error", "detail": "message is not JSON"}))
                continue
            op = msg.get("op") if isinstance(msg, dict) else None
            symbols = msg.get("symbols", []) if isinstance(msg, dict) else []
            if op not in ("subscribe", "unsubscribe") or not isinstance(symbols, list) \
                    or not all(isinstance(s, str) for s in symbols):
                await ws.send_text(json.dumps({"type": "error",
                                               "detail": "op must be subscribe/unsubscribe and symbols a list of strings"}))
                continue
            if op == "subscribe":
                channels = msg.get("channels") or ["trades", "quotes"]
                granted, denied = await rt.subscribe_market(symbols)
                sub.symbols |= set(granted)
                sub.channels = set(channels)
                await ws.send_text(json.dumps({"type": "subscribed", "granted": granted, "denied": denied}))
            else:
                sub.symbols -= set(symbols)
                await ws.send_text(json.dumps({"type": "unsubscribed", "symbols": symbols}))
    except WebSocketDisconnect:
        pass
    finally:
        writer.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await writer
        rt.bus.unsubscribe(sub)
