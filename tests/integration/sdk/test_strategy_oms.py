"""Strategy base and runner against a real OMS: hooks, heartbeats, recovery, graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from strategies.sdk import Bar, IntentReply, IntentsClosed, OmsClient, Strategy
from strategies.sdk.config import PROJECT_ROOT
from tests.integration.sdk.conftest import KEYS, RunningOms, eventually


class Recorder(Strategy):
    def __init__(self, oms: OmsClient, clock: Any, **kw: Any) -> None:
        super().__init__("KMP", oms, clock, heartbeat_sec=5.0, **kw)
        self.closed_bars: list[Bar] = []
        self.trades = 0
        self.fills: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.recovered: list[dict[str, int]] = []
        self.stopped = False

    async def on_recover(self) -> None:
        self.recovered.append({s: a.qty for s, a in self.allocations.items()})

    async def on_trade(self, event: dict[str, Any]) -> None:
        self.trades += 1

    async def on_bar(self, bar: Bar) -> None:
        self.closed_bars.append(bar)
        self.decision("TEST_BAR", bar.symbol, close=bar.close)

    async def on_order(self, event: dict[str, Any]) -> None:
        self.orders.append(event)

    async def on_fill(self, event: dict[str, Any]) -> None:
        self.fills.append(event)

    async def on_stop(self) -> None:
        self.stopped = True


async def strategy_status(oms_server: RunningOms, sid: str) -> dict[str, Any]:
    body = (await oms_server.admin.get("/api/v1/strategies")).json()
    return body.get(sid) or {}


async def test_hooks_heartbeats_recovery_and_stop(oms_server: RunningOms) -> None:
    async with OmsClient(oms_server.url, KEYS["KMP"], "KMP") as oms:
        s = Recorder(oms, oms_server.clock, symbols=["005930"])
        run = asyncio.create_task(s.run())
        await eventually(lambda: s.closed_bars and s.trades, what="bars and trades")
        bar = s.closed_bars[0]
        assert bar.symbol == "005930" and bar.low <= bar.open <= bar.high and bar.volume > 0
        assert s.decision_counts["TEST_BAR"] >= 1

        async def heartbeat_seen() -> bool:
            st = await strategy_status(oms_server, "KMP")
            return bool(st.get("last_heartbeat")) and st["status"].get("state") == "running"

        await eventually(heartbeat_seen, what="a heartbeat at the OMS")

        reply = await s.oms.enter("005930", 2)
        assert reply.ok
        await eventually(lambda: s.fills and s.allocations.get("005930"), what="fill and allocation")
        await eventually(lambda: reply.order_id not in s.open_orders and s.orders, what="order no longer open")
        assert s.allocations["005930"].qty == 2
        assert s.recovered == [{}]

        s.request_stop()
        await run
        assert s.stopped and s.stopping
        final = await strategy_status(oms_server, "KMP")
        assert final["status"]["state"] == "stopped"
        assert final["status"]["allocations"] == {"005930": 2}
        with pytest.raises(IntentsClosed):
            await s.oms.enter("000660", 1)

    async with OmsClient(oms_server.url, KEYS["KMP"], "KMP") as oms:
        again = Recorder(oms, oms_server.clock)
        run = asyncio.create_task(again.run())
        await eventually(lambda: again.recovered, what="recovery at start")
        assert again.recovered == [{"005930": 2}]
        assert "005930" in again.stream.symbols
        await eventually(lambda: "005930" in again.stream.granted, what="held symbol subscribed")
        again.request_stop()
        await run


class GatedTransport(httpx.AsyncBaseTransport):
    """The real transport, holding intent POSTs until ``gate`` opens (an OMS slow to answer)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.gate = asyncio.Event()
        self.held = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/intents":
            self.held += 1
            await self.gate.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_stop_waits_for_an_intent_in_flight(oms_server: RunningOms) -> None:
    transport = GatedTransport()
    async with OmsClient(oms_server.url, KEYS["KMP"], "KMP", transport=transport) as oms:
        s = Recorder(oms, oms_server.clock, symbols=["000660"])
        run = asyncio.create_task(s.run())
        await eventually(lambda: s.stream.connected, what="strategy started")
        submit: asyncio.Task[IntentReply] = asyncio.create_task(s.oms.enter("000660", 1))
        await eventually(lambda: transport.held == 1, what="intent on the wire")
        s.request_stop()
        await eventually(lambda: s.stopping and not s.stream.connected, what="stop begun")
        for _ in range(20):
            await asyncio.sleep(0)
        assert not run.done(), "stop must wait for the intent in flight"
        with pytest.raises(IntentsClosed):
            await s.oms.enter("005930", 1)
        transport.gate.set()
        await run
        reply = await submit
        assert reply.ok and reply.order_id
        assert s.stopped
        assert [o.order_id for o in await oms.orders(symbol="000660")] == [reply.order_id]


async def test_runner_runs_a_strategy_until_sigterm(oms_server: RunningOms, tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text("symbols: ['005930']\nheartbeat_sec: 5\n")
    env = {
        **os.environ,
        "OMS_URL": oms_server.url,
        "OMS_API_KEY": KEYS["ECHO"],
        "TRADER_CLOCK": oms_server.clock.spec(),
        "TRADER_CONFIG_DIR": str(tmp_path),
        "PYTHONPATH": str(PROJECT_ROOT),
        "LOG_LEVEL": "INFO",
    }
    code = (
        "import sys; from strategies.sdk.runner import run_strategy; "
        "sys.exit(run_strategy('echo', package='tests.integration.sdk.fixtures'))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        cwd=str(PROJECT_ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:

        async def echoed() -> bool:
            st = await strategy_status(oms_server, "ECHO")
            return bool((st.get("status") or {}).get("decisions", {}).get("ECHO_BAR", 0) >= 1)

        await eventually(echoed, timeout=60, what="the runner's strategy heartbeating its bar decisions")
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "decision code=ECHO_BAR symbol=005930" in text
    assert "ECHO stopped" in text
    final = await strategy_status(oms_server, "ECHO")
    assert final["status"]["state"] == "stopped"
