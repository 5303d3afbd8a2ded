"""KMP's wiring against a real OMS (in this process, paper exchange replaying 2026-02-27, SQLite).

- market data through the OMS proxy: the premarket load (daily bars → trend, sessions; 1m history),
  the 09:15 scan bars and REST quotes arrive in the shapes ``strategies.kmp.data`` reads;
- a proxy that is missing costs one call and is reported, not retried hundreds of times;
- a simulation's clock that waits for every process to be ready: KMP loads its premarket before its first
  heartbeat, so the launcher starts the clock only after it (an anchored clock leaves it to 08:00);
- recovery: a KMP allocation KMP never entered (the account's drift, assigned to KMP by an admin
  correct-allocation from ``_UNKNOWN_``) is adopted at start with a default stop that KMP publishes,
  and KMP then exits it on its own rules.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import httpx

from broker_core.clock import KST, VirtualClock, write_anchor
from broker_core.market_rules import round_up
from broker_core.paper.data import KrxData
from oms.settings import PaperConfig, load_config
from strategies.kmp import data as kmp_data
from strategies.kmp.config import KmpConfig, KmpParams, UniverseConfig
from strategies.kmp.strategy import KmpStrategy
from strategies.kmp.universe import SymbolMeta
from strategies.sdk import OmsClient
from tests.support.oms_server import (
    ADMIN_KEY,
    STRATEGY_KEYS,
    Oms,
    oms_settings,
    running_oms,
    sim_clock,
)
from tests.support.wait import until

DAY = date(2026, 2, 27)
SYMBOLS = ["005930", "000660", "055550"]


def _config(reconcile_fast: bool = False) -> Any:
    config = load_config()
    config.paper = PaperConfig.model_validate({**config.paper.model_dump(), "symbols": SYMBOLS})
    if reconcile_fast:
        config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 1, "max_interval_s": 2})
    return config


async def test_market_data_reaches_kmp_through_the_proxy(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path), _config(), clock=sim_clock(9, 20, speed=30)) as oms:
        async with OmsClient(oms.url, STRATEGY_KEYS["KMP"], "KMP") as client:
            params = KmpParams()
            metas = [SymbolMeta(s, sector="S") for s in SYMBOLS] + [SymbolMeta("999999")]
            result = await kmp_data.load_premarket(client, DAY, metas, params)
            assert result.unavailable is None, result.summary()
            krx = KrxData()
            # sessions come from the daily bars: the 20 KRX sessions before the day, the last one 02-26
            assert len(result.sessions) == 20 and result.sessions[-1] == date(2026, 2, 26)
            assert result.sessions == [d for d in krx.sessions() if d < DAY][-20:]
            caches = {c.symbol: c for c in result.caches}
            for sym in SYMBOLS:
                c = caches[sym]
                assert c.prior_close == krx.prev_close(sym, DAY)
                assert c.trend.sma_slow is not None and c.trend.slope_fast is not None  # ≥ 65 daily closes
                assert (c.value_base is not None) or result.missing.get(sym) == "NO_MINUTE_HISTORY"
            assert result.missing["999999"] == "NO_DAILY"  # unknown to the proxy: 404, not an error
            assert result.failures == 0

            # the 09:15 scan: the 15 opening-range bars of today, as the tape printed them
            bars, failures, why = await kmp_data.scan_bars(client, DAY, SYMBOLS, params)
            assert failures == 0 and why is None
            truth = [b for b in krx.minute_bars("005930", DAY) if b.ts.astimezone(KST).time() < time(9, 15)]
            got = bars["005930"]
            assert [b.start for b in got] == [b.ts for b in truth]
            assert [(b.open, b.high, b.low, b.close, b.volume) for b in got] == [
                (b.open, b.high, b.low, b.close, b.volume) for b in truth
            ]

            # a REST quote carries the static-VI reference and a book
            q = await kmp_data.quote(client, "005930")
            assert q.vi_ref and q.bid and q.ask and q.bid < q.ask and q.last


async def test_a_missing_proxy_costs_one_call() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404, json={"detail": "Not Found"})

    client = OmsClient("http://oms.test", "key", "KMP", transport=httpx.MockTransport(handler), retries=0)
    try:
        metas = [SymbolMeta(s) for s in SYMBOLS]
        result = await kmp_data.load_premarket(client, DAY, metas, KmpParams())
        assert result.unavailable and "no market-data proxy" in result.unavailable
        assert result.caches == [] and len(calls) == 1
        bars, _, why = await kmp_data.scan_bars(client, DAY, SYMBOLS, KmpParams())
        assert bars == {} and why and len(calls) == 2
    finally:
        await client.aclose()


async def test_the_premarket_loads_before_a_waiting_clock_starts(tmp_path: Path) -> None:
    anchor = tmp_path / "clock.anchor"
    clock = VirtualClock(datetime(2026, 2, 27, 7, 55, tzinfo=KST), 60, anchor_file=str(anchor))
    config = KmpConfig(universe=UniverseConfig(symbols=SYMBOLS))
    async with running_oms(oms_settings(tmp_path), _config(), clock=clock) as oms:
        async with OmsClient(oms.url, STRATEGY_KEYS["KMP"], "KMP") as client:
            kmp = KmpStrategy(config, client, clock, sectors={})
            assert kmp.clock_waiting
            await kmp.start()
            try:
                assert kmp.premarket_info.get("universe") == len(SYMBOLS), kmp.premarket_info
                assert kmp.decision_counts["KMP_PREMARKET_DATA"] == 1 and kmp.engine.day == DAY
                status = (await oms.get("/api/v1/strategies", ADMIN_KEY))["KMP"]["status"]
                assert status["kmp"]["premarket"]["universe"] == len(SYMBOLS)  # in the first heartbeat
                assert clock.now() == clock.start  # no virtual time spent on it
                write_anchor(anchor)
                assert not kmp.clock_waiting
            finally:
                await kmp.stop()
        async with OmsClient(oms.url, STRATEGY_KEYS["KMP"], "KMP") as client:
            running = KmpStrategy(config, client, sim_clock(7, 55), sectors={})
            assert not running.clock_waiting
            await running.start()
            try:
                assert running.premarket_info == {}  # a running clock: the 08:00 job loads it
            finally:
                await running.stop()


async def test_recovers_an_allocation_and_manages_its_exit(tmp_path: Path) -> None:
    symbol = "005930"
    async with running_oms(
        oms_settings(tmp_path), _config(reconcile_fast=True), clock=sim_clock(9, 40, speed=30)
    ) as oms:
        last = (await oms.get(f"/api/v1/marketdata/quote/{symbol}", ADMIN_KEY))["last"]
        avg = float(round_up(last * 1.05))  # bought above the market: the default stop (−1.5%) is already hit
        oms.runtime.broker.inject_position(symbol, 12, avg)
        await until(lambda: _unknown(oms, symbol), timeout=30, what="the drift assigned to _UNKNOWN_")
        resp = await oms.admin(
            "/api/v1/admin/correct-allocation",
            {
                "symbol": symbol,
                "from_strategy": "_UNKNOWN_",
                "to_strategy": "KMP",
                "qty": 12,
                "note": "test: a KMP position from before a crash",
            },
        )
        assert resp.status_code == 200 and resp.json()["frozen"] is False, resp.text

        config = KmpConfig(universe=UniverseConfig(symbols=SYMBOLS))
        async with OmsClient(oms.url, STRATEGY_KEYS["KMP"], "KMP") as client:
            kmp = KmpStrategy(config, client, oms.runtime.clock, sectors={}, heartbeat_sec=5)
            run = asyncio.create_task(kmp.run())
            try:
                await until(lambda: _kmp_qty(oms, symbol, 0), timeout=60, what="KMP to exit the recovered position")
                await until(lambda: kmp.decision_counts["KMP_POSITION_CLOSED"], timeout=10, what="close logged")
            finally:
                kmp.request_stop()
                await asyncio.wait_for(run, 30)

        counts = kmp.decision_counts
        assert counts["KMP_POSITION_RECOVERED"] == 1 and counts["KMP_X_STOP"] >= 1, dict(counts)
        intents = await oms.get("/api/v1/intents", ADMIN_KEY, strategy_id="KMP")
        by_type = {i["intent_type"]: i for i in intents}
        assert set(by_type) >= {"MODIFY_RISK", "EXIT"} and "ENTER" not in by_type, intents
        stop = by_type["MODIFY_RISK"]["risk_payload"]["stop_px"]
        assert stop == avg * (1 - KmpParams().recovered_stop_pct)
        assert by_type["EXIT"]["status"] in ("ACCEPTED", "EXECUTED")
        fills = await oms.get("/api/v1/fills", ADMIN_KEY, symbol=symbol)
        assert sum(f["qty"] for f in fills if f["side"] == "SELL" and f["strategy_id"] == "KMP") == 12
        status = (await oms.get("/api/v1/strategies", ADMIN_KEY))["KMP"]["status"]
        assert status["state"] == "stopped" and status["kmp"]["states"].get("DONE", 0) >= 1


async def _unknown(oms: Oms, symbol: str) -> bool:
    pos = (await oms.get("/api/v1/positions")).get(symbol, {})
    return pos.get("allocations", {}).get("_UNKNOWN_", {}).get("qty", 0) > 0


async def _kmp_qty(oms: Oms, symbol: str, qty: int) -> bool:
    allocations = await oms.get("/api/v1/allocations/KMP", ADMIN_KEY)
    return allocations.get(symbol, {}).get("qty", 0) == qty and (await _was_kmp(oms, symbol))


async def _was_kmp(oms: Oms, symbol: str) -> bool:
    fills = await oms.get("/api/v1/fills", ADMIN_KEY, symbol=symbol)
    return any(f["strategy_id"] == "KMP" for f in fills)
