"""Nulrimok's wiring against a real OMS (uvicorn in this process, paper exchange replaying 2026-02-27, SQLite).

- first start: the LRS fills itself through the OMS proxy, the DSE runs (catch-up after 08:00) and writes its
  watchlist file and table; a second start the same day finds the LRS fresh;
- recovery: a Nulrimok allocation from before a restart is adopted with its entry time, its stop is published
  to the OMS (MODIFY_RISK) and the position is then exited on Nulrimok's own rule (baseline stop, EXIT SWING).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

from broker_core.market_rules import round_up
from oms.settings import PaperConfig, load_config
from strategies.nulrimok.config import NulrimokConfig, NulrimokParams
from strategies.nulrimok.strategy import NulrimokStrategy
from strategies.sdk import OmsClient
from tests.support.oms_server import ADMIN_KEY, STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until

DAY = date(2026, 2, 27)
PAPER = ["005930", "000660", "055550"]
LISTING = ["005930", "000660", "055550", "005380", "035420", "105560", "000270", "012330", "051910", "068270"]


def _oms_config(reconcile_fast: bool = False) -> Any:
    config = load_config()
    config.paper = PaperConfig.model_validate({**config.paper.model_dump(), "symbols": PAPER})
    if reconcile_fast:
        config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 1, "max_interval_s": 2})
    return config


def _config(data_dir: Path) -> NulrimokConfig:
    return NulrimokConfig.model_validate(
        {"universe": {"symbols": LISTING}, "lrs": {"data_dir": str(data_dir), "progress": "log"}}
    )


async def _run(strategy: NulrimokStrategy, done: Any, what: str, timeout: float = 90) -> None:
    task = asyncio.create_task(strategy.run())
    try:
        await until(done, timeout=timeout, what=what)
    finally:
        strategy.request_stop()
        await asyncio.wait_for(task, 60)


async def test_first_start_fills_the_lrs_and_writes_the_watchlist_then_a_restart_skips(tmp_path: Path) -> None:
    data_dir = tmp_path / "nulrimok"
    async with running_oms(oms_settings(tmp_path), _oms_config(), clock=sim_clock(8, 10, speed=30)) as oms:
        async with OmsClient(oms.url, STRATEGY_KEYS["NULRIMOK"], "NULRIMOK") as client:
            s = NulrimokStrategy(_config(data_dir), client, oms.runtime.clock, sectors={}, heartbeat_sec=5)
            await _run(s, lambda: s.decision_counts["NULRIMOK_DSE"], "the DSE")
            assert s.lrs_info["mode"] == "empty" and s.lrs_info["complete"]
            artifact = data_dir / "watchlist" / f"{DAY}.json"
            doc = json.loads(artifact.read_text())
            assert doc["session"] == str(DAY) and doc["asof"] == "2026-02-26"
            assert {t["symbol"] for t in doc["tickers"]} == set(LISTING)
            assert all(t["tradable"] or t["drop_reason"] for t in doc["tickers"])
            assert doc["skipped_rules"].keys() >= {"earnings", "blacklist", "krw_usd"}
            assert len(s.store.watchlist(DAY)) == len(LISTING)
            assert s.decision_counts["NULRIMOK_RULE_SKIPPED"] == 3 and s.decision_counts["NULRIMOK_REGIME"] == 1
            counts = s.store.counts()
            assert counts["daily_bars"] > 400 * len(LISTING) and counts["investor_flow"] > 200 * len(LISTING)

            again = NulrimokStrategy(_config(data_dir), client, oms.runtime.clock, sectors={}, heartbeat_sec=5)
            await _run(again, lambda: again.decision_counts["NULRIMOK_DSE"], "the DSE after a restart")
            assert again.lrs_info["mode"] == "fresh" and again.lrs_info["seconds"] < 1.0
            assert again.store.counts()["daily_bars"] == counts["daily_bars"]
        status = (await oms.get("/api/v1/strategies", ADMIN_KEY))["NULRIMOK"]["status"]
        assert status["nulrimok"]["dse"]["session"] == str(DAY)


async def test_recovered_allocation_gets_its_stop_and_is_exited_by_nulrimok(tmp_path: Path) -> None:
    symbol = "005930"
    async with running_oms(oms_settings(tmp_path), _oms_config(True), clock=sim_clock(9, 40, speed=30)) as oms:
        last = (await oms.get(f"/api/v1/marketdata/quote/{symbol}", ADMIN_KEY))["last"]
        avg = float(round_up(last * 1.05))  # bought above the market: the default stop (−3%) is already hit
        oms.runtime.broker.inject_position(symbol, 12, avg)
        await until(lambda: _unknown(oms, symbol), timeout=30, what="the drift assigned to _UNKNOWN_")
        resp = await oms.admin(
            "/api/v1/admin/correct-allocation",
            {"symbol": symbol, "from_strategy": "_UNKNOWN_", "to_strategy": "NULRIMOK", "qty": 12, "note": "test"},
        )
        assert resp.status_code == 200, resp.text
        async with OmsClient(oms.url, STRATEGY_KEYS["NULRIMOK"], "NULRIMOK") as client:
            s = NulrimokStrategy(_config(tmp_path / "nul"), client, oms.runtime.clock, sectors={}, heartbeat_sec=5)
            await _run(s, lambda: _qty(oms, symbol, 0), "Nulrimok to exit the recovered position")
        counts = s.decision_counts
        assert counts["NULRIMOK_POSITION_RECOVERED"] == 1 and counts["NULRIMOK_X_STOP"] >= 1, dict(counts)
        intents = await oms.get("/api/v1/intents", ADMIN_KEY, strategy_id="NULRIMOK")
        by_type = {i["intent_type"]: i for i in intents}
        assert set(by_type) >= {"MODIFY_RISK", "EXIT"} and "ENTER" not in by_type, intents
        assert by_type["MODIFY_RISK"]["risk_payload"]["stop_px"] == round(
            avg * (1 - NulrimokParams().recovered_stop_pct), 4
        )
        assert {i["time_horizon"] for i in intents} == {"SWING"}
        assert by_type["EXIT"]["status"] in ("ACCEPTED", "EXECUTED")
        assert s.store.load_position_state(symbol) is None  # closed: no state left behind


async def _unknown(oms: Oms, symbol: str) -> bool:
    pos = (await oms.get("/api/v1/positions")).get(symbol, {})
    return pos.get("allocations", {}).get("_UNKNOWN_", {}).get("qty", 0) > 0


async def _qty(oms: Oms, symbol: str, qty: int) -> bool:
    allocations = await oms.get("/api/v1/allocations/NULRIMOK", ADMIN_KEY)
    fills = await oms.get("/api/v1/fills", ADMIN_KEY, symbol=symbol)
    return allocations.get(symbol, {}).get("qty", 0) == qty and any(f["strategy_id"] == "NULRIMOK" for f in fills)
