"""A real OMS for the SDK tests: the app served by uvicorn on a free localhost port, in this process.

The OMS runs the paper exchange replaying 2026-02-27 on a VirtualClock that starts at 09:00 KST and
runs 60× faster, with SQLite and its journal under the test's tmp_path. The ASGI app is wrapped in
:class:`StreamKillSwitch` so a test can make the server close every stream socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from broker_core.clock import KST, VirtualClock
from oms.app import create_app
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings, PaperConfig
from tests.support.wait import until
from trader.venues import build_venue

ADMIN_KEY = "admin-key-for-sdk-tests"
KEYS = {"KMP": "k1", "KPR": "k2", "ECHO": "k3"}
SYMBOLS = ["005930", "000660", "066570"]
Scope = dict[str, Any]
Message = dict[str, Any]


async def eventually(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``pred`` (sync or async) until it returns something truthy; fail after ``timeout`` wall s."""
    return await until(pred, timeout=timeout, interval=0.02, what=what)


class _Conn:
    def __init__(self, send: Callable[[Message], Awaitable[None]]) -> None:
        self._send = send
        self.accepted = False
        self.killed = asyncio.Event()

    async def send(self, message: Message) -> None:
        if self.killed.is_set():
            return
        if message["type"] == "websocket.accept":
            self.accepted = True
        await self._send(message)

    async def kill(self) -> None:
        if self.accepted and not self.killed.is_set():
            self.killed.set()
            await self._send({"type": "websocket.close", "code": 1012, "reason": "test: server restart"})


class StreamKillSwitch:
    """ASGI wrapper: :meth:`close_all` makes the server send a close frame on every open WebSocket."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.conns: set[_Conn] = set()

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        conn = _Conn(send)

        async def recv() -> Message:
            if conn.killed.is_set():
                return {"type": "websocket.disconnect", "code": 1012}
            got = asyncio.ensure_future(receive())
            killed = asyncio.ensure_future(conn.killed.wait())
            await asyncio.wait({got, killed}, return_when=asyncio.FIRST_COMPLETED)
            if not got.done():
                got.cancel()
                return {"type": "websocket.disconnect", "code": 1012}
            killed.cancel()
            return got.result()

        self.conns.add(conn)
        try:
            await self.app(scope, recv, conn.send)
        finally:
            self.conns.discard(conn)

    async def close_all(self) -> int:
        conns = [c for c in self.conns if c.accepted and not c.killed.is_set()]
        for c in conns:
            await c.kill()
        return len(conns)


@dataclass
class RunningOms:
    url: str
    clock: VirtualClock
    runtime: OmsRuntime
    switch: StreamKillSwitch
    admin: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/stream"


@pytest.fixture
async def oms_server(tmp_path: Path) -> AsyncIterator[RunningOms]:
    clock = VirtualClock(datetime(2026, 2, 27, 9, 0, tzinfo=KST), speed=60)
    settings = OmsSettings(
        oms_admin_key=SecretStr(ADMIN_KEY),
        oms_strategy_keys=SecretStr(",".join(f"{s}:{k}" for s, k in KEYS.items())),
        oms_data_dir=str(tmp_path / "oms"),
        oms_paper_date="2026-02-27",
        oms_instance_id="sdktest",
        database_url="",
        oms_journal_path="",
    )
    config = OmsConfig(paper=PaperConfig.model_validate({"symbols": SYMBOLS}))
    runtime = OmsRuntime(settings, config, venue=build_venue, clock=clock)
    switch = StreamKillSwitch(create_app(runtime=runtime))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(switch, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{port}"
    admin = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    try:
        await eventually(lambda: server.started or serving.done(), what="uvicorn to start")
        if serving.done():
            serving.result()
            raise AssertionError("uvicorn exited during start")

        async def healthy() -> bool:
            return bool((await admin.get("/health")).json().get("status") == "ok")

        await eventually(healthy, what="OMS /health ok")
        yield RunningOms(url, clock, runtime, switch, admin)
    finally:
        await admin.aclose()
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)
        sock.close()
