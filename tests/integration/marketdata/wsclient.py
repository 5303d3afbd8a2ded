"""A raw client of WS /api/v1/stream for the hub tests (no SDK: the tests look at every frame)."""

from __future__ import annotations

import asyncio
import json
import socket
from contextlib import suppress
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support.wait import until


class WsClient:
    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws = ws
        self.name = name
        self.msgs: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, base_url: str, key: str, name: str = "", *, reading: bool = True, tiny_buffers: bool = False
    ) -> WsClient:
        """``tiny_buffers``: a socket with a small receive buffer and a library queue of one frame, so a
        client that stops reading pushes back on the server within a few kilobytes."""
        url = base_url.replace("http://", "ws://") + "/api/v1/stream"
        kwargs: dict[str, Any] = {}
        if tiny_buffers:
            host, port = base_url.removeprefix("http://").split(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            kwargs.update(sock=sock, max_queue=1)
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {key}"}, ping_interval=None, **kwargs)
        client = cls(ws, name or key[:8])
        if reading:
            client.start_reading()
        return client

    def start_reading(self) -> None:
        async def run() -> None:
            with suppress(Exception):
                async for raw in self.ws:
                    self.msgs.append(json.loads(raw))

        self._task = asyncio.create_task(run())

    async def send(self, **msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def subscribe(
        self, symbols: list[str], *, channels: list[str] | None = None, keep: list[str] | None = None
    ) -> dict[str, Any]:
        """Send a subscribe and wait for its answer (the client must be reading)."""
        before = len(self.of("subscribed"))
        body: dict[str, Any] = {"op": "subscribe", "symbols": symbols, "channels": channels or ["trades"]}
        if keep is not None:
            body["keep"] = keep
        await self.send(**body)
        await until(lambda: len(self.of("subscribed")) > before, timeout=20, what=f"{self.name} subscribe answer")
        return self.of("subscribed")[before]

    async def unsubscribe(self, symbols: list[str]) -> None:
        before = len(self.of("unsubscribed"))
        await self.send(op="unsubscribe", symbols=symbols)
        await until(lambda: len(self.of("unsubscribed")) > before, timeout=20, what=f"{self.name} unsubscribe answer")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m.get("type") == kind]

    def trades(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m.get("type") == "trade" and (symbol is None or m["symbol"] == symbol)]

    def last_trade_ts(self) -> datetime | None:
        t = self.trades()
        return datetime.fromisoformat(t[-1]["ts"]) if t else None

    async def close(self) -> None:
        with suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task

    def choke_server_side(self) -> bool:
        """Shrink the *server's* send buffers of this connection (kernel and asyncio) so a client that
        stops reading backs the server up after a few kilobytes instead of megabytes. Test-only: finds
        uvicorn's protocol object of this connection by its peer address."""
        import gc

        mine = self.ws.transport.get_extra_info("sockname")
        for obj in gc.get_objects():
            module = type(obj).__dict__.get("__module__") or getattr(type(obj), "__module__", "")
            if not isinstance(module, str) or not module.startswith("uvicorn.protocols.websockets"):
                continue
            transport = getattr(obj, "transport", None)
            if transport is not None and transport.get_extra_info("peername") == mine:
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                transport.set_write_buffer_limits(high=4096)
                return True
        return False

    def kill(self) -> None:
        """The socket dies without a close handshake."""
        self.ws.transport.abort()
