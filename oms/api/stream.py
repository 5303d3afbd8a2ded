"""WS /api/v1/stream: per-strategy order/fill events and subscribed market data.

Client → server::

    {"op": "subscribe", "symbols": [...], "channels": ["trades", "quotes"], "keep": [...]}
    {"op": "unsubscribe", "symbols": [...]}

``channels`` defaults to both; ``keep`` (optional) *replaces* the strategy's keep set — symbols in an
active setup that another strategy may not evict (``"symbols": []`` with ``keep`` only updates it).

Server → client (one JSON object per message)::

    {"type": "subscribed", "granted": [...], "denied": {symbol: CODE}}      (+ "detail": {symbol: text} when denied)
    {"type": "unsubscribed", "symbols": [...]}
    {"type": "evicted", "symbols": [...], "reason": "PREEMPTED"|"WINDOW_END"|"UPSTREAM_ERROR", "detail": "..."}
    {"type": "gap", "symbols": [...], "since": iso, "until": iso, "reason": "UPSTREAM_STALE"|"UPSTREAM_ENDED"}
    {"type": "trade", "symbol", "price", "qty", "ts", "side"}   and  order / fill events
    {"type": "error", "detail": "..."}

With ``?batch=1`` on the URL every frame is instead a JSON *array* of such objects — whatever is
queued when the socket is free (up to 500), in the same order — which cuts the per-message cost of
framing and decoding several times for high-rate consumers.

Denial codes: UNKNOWN_SYMBOL, NO_LEASE, OUTSIDE_WINDOW, LEASE_FULL, CAPACITY_FULL, UPSTREAM_ERROR
(see :mod:`oms.marketdata.slots`). Order/fill/control events are never dropped; trades are conflated
(latest per symbol wins) only for a consumer that lags by more than ``marketdata.consumer_backlog``.
Closing the socket releases every slot lease this connection alone held.
Auth: ``Authorization: Bearer <key>`` on the handshake (or ``?api_key=`` for tools that cannot set it).
A strategy key gets its own order/fill events, the admin and read keys everyone's. Strategy and admin
keys may subscribe; the read key may not hold stream subscriptions (it could otherwise take every slot
of the account): its ``subscribe`` is answered with an ``error`` naming the reason and leases nothing.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from oms.marketdata.hub import CHANNELS
from oms.runtime import OmsRuntime

router = APIRouter()
MAX_BATCH = 500
READ_KEY_REFUSED = "the read key may not hold stream subscriptions (use a strategy or the admin key); nothing leased"


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(s, str) and s for s in value)


@router.websocket("/api/v1/stream")
async def stream(ws: WebSocket) -> None:
    header = ws.headers.get("authorization", "")
    key = (
        header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else ws.query_params.get("api_key", "")
    )
    who = ws.app.state.keys.lookup(key) if key else None
    rt: OmsRuntime | None = getattr(ws.app.state, "runtime", None)
    hub = rt.hub if rt is not None else None
    if who is None or rt is None or hub is None:
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason="invalid API key" if who is None else "starting")
        return
    await ws.accept()
    is_strategy = who.role == "strategy" and who.strategy_id
    consumer = hub.connect(who.strategy_id if is_strategy else "*", who.name.upper())

    def send(payload: dict[str, Any]) -> None:
        """Answers go through the consumer's critical queue: one writer per socket, ahead of market data."""
        consumer.put_critical(payload)

    async def pump() -> None:
        while True:
            item = await consumer.get()
            await ws.send_text(item if isinstance(item, str) else json.dumps(item, default=str))

    async def pump_batched() -> None:
        """``?batch=1``: each frame is a JSON array of every event queued when the socket is free."""
        while True:
            items = [await consumer.get()]
            while len(items) < MAX_BATCH and (item := consumer.get_nowait()) is not None:
                items.append(item)
            await ws.send_text(
                "[" + ",".join(i if isinstance(i, str) else json.dumps(i, default=str) for i in items) + "]"
            )

    batched = ws.query_params.get("batch", "").lower() in ("1", "true", "yes")
    writer = asyncio.create_task(pump_batched() if batched else pump())
    try:
        while True:
            try:
                msg = json.loads(await ws.receive_text())
            except json.JSONDecodeError:
                send({"type": "error", "detail": "message is not JSON"})
                continue
            op = msg.get("op") if isinstance(msg, dict) else None
            symbols = msg.get("symbols", []) if isinstance(msg, dict) else []
            if op not in ("subscribe", "unsubscribe") or not _strings(symbols):
                send({"type": "error", "detail": "op must be subscribe/unsubscribe and symbols a list of strings"})
                continue
            if op == "subscribe" and who.role == "read":
                send({"type": "error", "detail": READ_KEY_REFUSED})
                continue
            if op == "subscribe":
                channels = msg.get("channels") or ["trades", "quotes"]
                keep = msg.get("keep")
                if not _strings(channels) or not set(channels) <= CHANNELS:
                    send({"type": "error", "detail": f"channels must be a list drawn from {sorted(CHANNELS)}"})
                    continue
                if keep is not None and not _strings(keep):
                    send({"type": "error", "detail": "keep must be a list of symbols"})
                    continue
                granted, denied = await hub.subscribe(consumer, symbols, channels, keep)
                answer: dict[str, Any] = {
                    "type": "subscribed",
                    "granted": granted,
                    "denied": {s: code for s, (code, _) in denied.items()},
                }
                if denied:
                    answer["detail"] = {s: text for s, (_, text) in denied.items()}
                send(answer)
            else:
                await hub.unsubscribe(consumer, symbols)
                send({"type": "unsubscribed", "symbols": symbols})
    except WebSocketDisconnect:
        pass
    finally:
        writer.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await writer
        await hub.disconnect(consumer)
