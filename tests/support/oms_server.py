"""A real OMS (uvicorn on a free localhost port) inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from broker_core.clock import KST, Clock, VirtualClock
from oms.app import create_app
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings, load_config
from tests.support.wait import until
from trader.venues import build_venue

ADMIN_KEY = "test-admin-key-000001"
READ_KEY = "test-read-key-0000001"
STRATEGY_KEYS = {
    "KMP": "test-kmp-key-00000001",
    "KPR": "test-kpr-key-00000001",
    "NULRIMOK": "test-nul-key-00000001",
    "PCIM": "test-pcim-key-0000001",
}
SESSION = "2026-02-27"
GOOD_ENTER = {
    "intent_type": "ENTER",
    "strategy_id": "KMP",
    "symbol": "005930",
    "desired_qty": 1,
    "constraints": {"order_type": "MARKETABLE_LIMIT"},
}
"""A well-formed ENTER of KMP (one share, marketable): the baseline of the auth and bad-input tests."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while chosen, so none is picked twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def oms_settings(tmp_path: Path, database_url: str = "", **overrides: Any) -> OmsSettings:
    values: dict[str, Any] = dict(
        oms_admin_key=ADMIN_KEY,
        oms_read_key=READ_KEY,
        oms_strategy_keys=",".join(f"{k}:{v}" for k, v in STRATEGY_KEYS.items()),
        oms_data_dir=str(tmp_path / "oms"),
        oms_paper_date=SESSION,
        database_url=database_url,
        oms_instance_id="test",
    )
    values.update(overrides)
    return OmsSettings(**values)


def sim_clock(hh: int = 9, mm: int = 30, speed: float = 30.0) -> VirtualClock:
    return VirtualClock(datetime.fromisoformat(f"{SESSION}T{hh:02d}:{mm:02d}:00+09:00").astimezone(KST), speed)


@dataclass
class Oms:
    url: str
    runtime: OmsRuntime
    http: httpx.AsyncClient

    async def intent(self, key: str, **body: Any) -> httpx.Response:
        return await self.http.post("/api/v1/intents", json=body, headers=auth(key))

    async def get(self, path: str, key: str = READ_KEY, **params: Any) -> Any:
        resp = await self.http.get(path, headers=auth(key), params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=auth(ADMIN_KEY))

    async def drained(self, timeout: float = 30.0) -> dict[str, Any]:
        """``/health`` once it reports the database reachable and the journal empty.

        Polls ``/health`` itself rather than the drainer: the OMS keeps journaling while it runs (the paper
        exchange's fills, position snapshots), so an empty journal seen a moment earlier can hold new rows by
        the time ``/health`` is read."""
        drainer = self.runtime.drainer
        assert drainer is not None, "this OMS has no database to drain to"

        async def empty() -> dict[str, Any] | None:
            drainer.wake()
            health: dict[str, Any] = (await self.http.get("/health")).json()
            return health if health["db"] == "ok" and health["journal_backlog"] == 0 else None

        return await until(empty, timeout=timeout, interval=0.05, what="/health: db ok and journal_backlog 0")


@asynccontextmanager
async def running_oms(
    settings: OmsSettings,
    config: OmsConfig | None = None,
    clock: Clock | None = None,
    runtime: OmsRuntime | None = None,
    healthy: tuple[str, ...] = ("ok",),
) -> AsyncIterator[Oms]:
    runtime = runtime or OmsRuntime(settings, config or load_config(), venue=build_venue, clock=clock or sim_clock())
    app = create_app(runtime=runtime)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def is_up() -> bool:
            if task.done():
                task.result()
            try:
                return (await http.get("/health")).json().get("status") in healthy
            except httpx.HTTPError:
                return False

        await until(is_up, timeout=60, what=f"OMS /health in {healthy}")
        try:
            yield Oms(url, runtime, http)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)
