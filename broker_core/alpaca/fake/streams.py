"""The fake's two WebSocket streams, as alpaca-py 0.44 speaks them (specs/alpaca.md §8, §9).

``/stream`` (trade_updates): JSON. The client authenticates with ``{"action": "authenticate", "data":
{"key_id", "secret_key"}}`` and gets ``{"stream": "authorization", "data": {"status": "authorized", ...}}``,
then ``listen``s to ``trade_updates`` and receives ``{"stream": "trade_updates", "data": {...}}`` events.
Replies go out as binary frames, as Alpaca's paper stream sends them. Events are not replayed to a client
that reconnects (as at Alpaca): what was published while it was away is lost to the stream.

``/v2/iex`` (market data): msgpack when the client connects with ``Content-Type: application/msgpack``
(alpaca-py does), JSON otherwise. Every server frame is an array of messages: ``success/connected`` on
connect, ``success/authenticated`` after ``{"action": "auth", "key", "secret"}``, a ``subscription`` ack after
each ``subscribe``/``unsubscribe``, then ``t`` trades, ``q`` quotes and ``b`` minute bars (a minute's bar is
sent when that symbol's first print of the next minute arrives). One authenticated connection per key
(a second gets error 406), as at Alpaca.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack
from fastapi import WebSocket, WebSocketDisconnect

from broker_core.alpaca.fake.wire import iso
from broker_core.models import Quote, Tick

log = logging.getLogger("broker_core.alpaca.fake")
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
SERVED = ("trades", "quotes", "bars")
MAX_MESSAGES_PER_FRAME = 200


@dataclass(eq=False)
class _Session:
    ws: WebSocket
    out: asyncio.Queue[bytes | str | None] = field(default_factory=asyncio.Queue)
    authorized: bool = False
    alive: bool = True
    closing: bool = False

    def send(self, frame: bytes | str) -> None:
        if self.alive:
            self.out.put_nowait(frame)

    def refuse(self) -> None:
        """Stop after what is queued (an error reply) has been sent; the connection is then closed."""
        self.out.put_nowait(None)
        self.closing = True
        self.alive = False


async def _writer(session: _Session) -> None:
    while True:
        frame = await session.out.get()
        if frame is None:
            return
        if isinstance(frame, bytes):
            await session.ws.send_bytes(frame)
        else:
            await session.ws.send_text(frame)


async def _receive(ws: WebSocket) -> bytes | str | None:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    if message.get("bytes") is not None:
        return bytes(message["bytes"])
    return str(message.get("text") or "")


class _Hub:
    def __init__(self, check: Callable[[str, str], bool]) -> None:
        self.check = check
        self.sessions: set[Any] = set()
        self.connects = 0
        self.dropped = 0

    async def _run(self, session: Any, handle: Callable[[Any, bytes | str], None]) -> None:
        writer = asyncio.create_task(_writer(session))
        try:
            while session.alive:
                frame = await _receive(session.ws)
                if frame is None:
                    break
                handle(session, frame)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            refused = session.closing
            session.alive = False
            self.sessions.discard(session)
            if refused:  # send the refusal, then close
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(writer), 2)
                await self._close(session, 1008)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    def drop_all(self) -> int:
        """Cut every connection from the server side now (anything queued for them is lost)."""
        sessions = list(self.sessions)
        for s in sessions:
            s.alive = False
            self.sessions.discard(s)
            asyncio.get_running_loop().create_task(self._close(s))
        self.dropped += len(sessions)
        return len(sessions)

    @staticmethod
    async def _close(session: Any, code: int = 1011) -> None:
        with contextlib.suppress(Exception):
            await session.ws.close(code=code)


class TradeUpdatesHub(_Hub):
    """The ``trade_updates`` stream (``/stream``)."""

    def __init__(self, check: Callable[[str, str], bool]) -> None:
        super().__init__(check)
        self.sent = 0

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        session = _TradeSession(ws)
        self.sessions.add(session)
        self.connects += 1
        await self._run(session, self._handle)

    def _handle(self, session: Any, frame: bytes | str) -> None:
        try:
            msg = json.loads(frame)
            action, data = msg.get("action"), msg.get("data") or {}
        except (ValueError, AttributeError):
            session.send(_json_bytes({"stream": "error", "data": {"error_message": "invalid syntax"}}))
            return
        if action == "authenticate":
            ok = self.check(str(data.get("key_id", "")), str(data.get("secret_key", "")))
            session.authorized = ok
            status = "authorized" if ok else "unauthorized"
            session.send(_json_bytes({"stream": "authorization", "data": {"action": "authenticate", "status": status}}))
            if not ok:
                session.refuse()
            return
        if not session.authorized:
            session.send(_json_bytes({"stream": "authorization", "data": {"action": action, "status": "unauthorized"}}))
            return
        if action == "listen":
            streams = [s for s in data.get("streams", []) if s == "trade_updates"]
            session.listening = bool(streams)
            session.send(_json_bytes({"stream": "listening", "data": {"streams": streams}}))
            return
        session.send(_json_bytes({"stream": "error", "data": {"error_message": f"unknown action {action!r}"}}))

    def publish(self, message: dict[str, Any]) -> int:
        frame = _json_bytes(message)
        count = 0
        for s in list(self.sessions):
            if s.authorized and s.listening:
                s.send(frame)
                count += 1
        self.sent += count
        return count


@dataclass(eq=False)
class _TradeSession(_Session):
    listening: bool = False


@dataclass(eq=False)
class _DataSession(_Session):
    msgpack: bool = True
    key: str = ""
    subs: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})

    def wants(self, channel: str, symbol: str) -> bool:
        chosen = self.subs[channel]
        return symbol in chosen or "*" in chosen


class MarketDataHub(_Hub):
    """The market-data stream (``/v2/iex``, ``/v2/sip``)."""

    def __init__(self, check: Callable[[str, str], bool], max_connections: int = 1) -> None:
        super().__init__(check)
        self.max_connections = max_connections
        self._minute: dict[str, list[Any]] = {}
        self.sent_messages = 0

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        use_msgpack = "msgpack" in (ws.headers.get("content-type") or "")
        session = _DataSession(ws, msgpack=use_msgpack)
        self.sessions.add(session)
        self.connects += 1
        self._send(session, [{"T": "success", "msg": "connected"}])
        await self._run(session, self._handle)

    def _send(self, session: _DataSession, messages: list[dict[str, Any]]) -> None:
        if session.msgpack:
            session.send(msgpack.packb([_for_msgpack(m) for m in messages], use_bin_type=True))
        else:
            session.send(json.dumps([_for_json(m) for m in messages]))

    def _handle(self, session: Any, frame: bytes | str) -> None:
        try:
            msg = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else json.loads(frame)
            action = msg.get("action")
        except Exception:
            self._send(session, [{"T": "error", "code": 400, "msg": "invalid syntax"}])
            return
        if action == "auth":
            key, secret = str(msg.get("key", "")), str(msg.get("secret", ""))
            if not self.check(key, secret):
                self._send(session, [{"T": "error", "code": 402, "msg": "auth failed"}])
                session.refuse()
                return
            live = [s for s in self.sessions if s is not session and s.authorized and s.key == key]
            if len(live) >= self.max_connections:
                self._send(session, [{"T": "error", "code": 406, "msg": "connection limit exceeded"}])
                session.refuse()
                return
            session.authorized, session.key = True, key
            self._send(session, [{"T": "success", "msg": "authenticated"}])
            return
        if not session.authorized:
            self._send(session, [{"T": "error", "code": 401, "msg": "not authenticated"}])
            return
        if action in ("subscribe", "unsubscribe"):
            for channel in CHANNELS:
                symbols = msg.get(channel) or []
                if not isinstance(symbols, list):
                    continue
                if action == "subscribe":
                    session.subs[channel].update(str(s) for s in symbols)
                else:
                    session.subs[channel].difference_update(str(s) for s in symbols)
            ack: dict[str, Any] = {"T": "subscription"}
            for channel in CHANNELS:
                ack[channel] = sorted(session.subs[channel])
            ack["corrections"] = sorted(session.subs["trades"])
            ack["cancelErrors"] = sorted(session.subs["trades"])
            self._send(session, [ack])
            return
        self._send(session, [{"T": "error", "code": 400, "msg": f"invalid action {action!r}"}])

    def on_ticks(self, ticks: list[Tick], trade_ids: list[int], quote: Callable[[str], Quote | None]) -> None:
        """Fan a batch of prints out as trades, quotes and completed minute bars."""
        completed: list[dict[str, Any]] = []
        for tick in ticks:
            bar = self._roll_bar(tick)
            if bar is not None:
                completed.append(bar)
        live = [s for s in self.sessions if s.authorized and s.alive]
        if not live:
            return
        trades = [
            {"T": "t", "S": t.symbol, "i": i, "x": "V", "p": t.price, "s": t.qty, "c": ["@"], "z": "C", "t": t.ts}
            for t, i in zip(ticks, trade_ids, strict=True)
        ]
        last_by_symbol: dict[str, Tick] = {t.symbol: t for t in ticks}
        quotes = []
        for symbol, tick in last_by_symbol.items():
            q = quote(symbol)
            if q is not None and q.bid is not None and q.ask is not None:
                quotes.append(
                    {
                        "T": "q",
                        "S": symbol,
                        "bx": "V",
                        "bp": q.bid,
                        "bs": 100,
                        "ax": "V",
                        "ap": q.ask,
                        "as": 100,
                        "c": ["R"],
                        "z": "C",
                        "t": tick.ts,
                    }
                )
        for s in live:
            batch = [m for m in completed if s.wants("bars", m["S"])]
            batch += [m for m in trades if s.wants("trades", m["S"])]
            batch += [m for m in quotes if s.wants("quotes", m["S"])]
            for i in range(0, len(batch), MAX_MESSAGES_PER_FRAME):
                self._send(s, batch[i : i + MAX_MESSAGES_PER_FRAME])
            self.sent_messages += len(batch)

    def _roll_bar(self, tick: Tick) -> dict[str, Any] | None:
        minute = tick.ts.replace(second=0, microsecond=0)
        acc = self._minute.get(tick.symbol)
        done = None
        if acc is not None and acc[0] != minute:
            start, o, h, lo, c, v, n = acc
            done = {"T": "b", "S": tick.symbol, "o": o, "h": h, "l": lo, "c": c, "v": v, "t": start, "n": n, "vw": c}
            acc = None
        if acc is None:
            self._minute[tick.symbol] = [minute, tick.price, tick.price, tick.price, tick.price, tick.qty, 1]
        else:
            acc[2] = max(acc[2], tick.price)
            acc[3] = min(acc[3], tick.price)
            acc[4] = tick.price
            acc[5] += tick.qty
            acc[6] += 1
        return done


def _json_bytes(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _for_msgpack(message: dict[str, Any]) -> dict[str, Any]:
    ts = message.get("t")
    if isinstance(ts, datetime):
        seconds = ts.timestamp()
        whole = int(seconds // 1)
        message = {**message, "t": msgpack.Timestamp(whole, ts.microsecond * 1000)}
    return message


def _for_json(message: dict[str, Any]) -> dict[str, Any]:
    ts = message.get("t")
    return {**message, "t": iso(ts)} if isinstance(ts, datetime) else message


__all__ = ["MarketDataHub", "TradeUpdatesHub"]
