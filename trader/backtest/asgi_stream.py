"""The OMS's ``/api/v1/stream`` WebSocket served in-process: the ASGI app is called directly, frames
travel through two queues, no socket and no thread.

:class:`AsgiStreamConnect` is a :data:`strategies.sdk.stream.Connect`: the SDK's ``StreamClient``
opens it as it would open ``websockets.asyncio.client.connect(url, additional_headers=...)``, so the
strategy's code path is the live one. A handshake the app refuses (close before accept) raises
``InvalidStatus`` with HTTP 403, as a real server's refusal does; ``send`` after the close raises
``ConnectionClosedOK``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import suppress
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.http11 import Response

Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
_CLOSED = object()
NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011


class AsgiStreamConnect:
    """Opens in-process WebSocket connections to ``app``."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    def __call__(self, url: str, *, additional_headers: dict[str, str] | None = None, **_: Any) -> AsgiWebSocket:
        return AsgiWebSocket(self.app, url, additional_headers or {})


class AsgiWebSocket:
    """One connection; use as ``async with``. Iterating yields the app's text (or bytes) frames."""

    def __init__(self, app: AsgiApp, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self._scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "wss" if parts.scheme == "wss" else "ws",
            "server": (parts.hostname or "backtest", parts.port or 80),
            "client": ("127.0.0.1", 0),
            "root_path": "",
            "path": parts.path or "/",
            "raw_path": (parts.path or "/").encode(),
            "query_string": parts.query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "subprotocols": [],
            "state": {},
        }
        self._app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._to_client: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._disconnected = False
        self.close_code: int | None = None

    async def __aenter__(self) -> AsgiWebSocket:
        self._task = asyncio.create_task(self._serve(), name=f"asgi-ws:{self._scope['path']}")
        self._to_app.put_nowait({"type": "websocket.connect"})
        first = await self._to_client.get()
        if isinstance(first, dict) and first.get("type") == "websocket.accept":
            return self
        await self._finish()
        status = int(first.get("status", 403)) if isinstance(first, dict) else 403
        raise InvalidStatus(Response(status, "Forbidden" if status == 403 else "Refused", Headers()))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
        await self._finish()

    async def _serve(self) -> None:
        code = NORMAL_CLOSURE
        try:
            await self._app(self._scope, self._to_app.get, self._from_app)
        except Exception:
            code = INTERNAL_ERROR
            raise
        finally:
            self._to_client.put_nowait({"type": "websocket.close", "code": code})

    async def _from_app(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.http.response.start":
            self._to_client.put_nowait({"type": "refused", "status": message.get("status", 403)})
        elif kind in ("websocket.accept", "websocket.send", "websocket.close"):
            self._to_client.put_nowait(dict(message))

    async def _finish(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                self._disconnect()
            with suppress(Exception):
                await task

    async def send(self, message: str) -> None:
        if self._closed:
            raise ConnectionClosedOK(None, None)
        self._to_app.put_nowait({"type": "websocket.receive", "text": message})

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.close_code = self.close_code or NORMAL_CLOSURE
            self._disconnect()
            self._to_client.put_nowait(_CLOSED)

    def _disconnect(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": self.close_code or NORMAL_CLOSURE})

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str | bytes]:
        while True:
            message = await self._to_client.get()
            if message is _CLOSED:
                return
            kind = message.get("type")
            if kind == "websocket.close":
                self._closed = True
                self.close_code = self.close_code or int(message.get("code", NORMAL_CLOSURE))
                return
            if kind == "websocket.send":
                text = message.get("text")
                yield text if text is not None else bytes(message.get("bytes") or b"")
