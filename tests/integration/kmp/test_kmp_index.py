"""The derived KOSPI/KOSDAQ through a real OMS on the paper exchange (2026-02-27 replay, SQLite), and KMP's
regime on it: the index inputs arrive, so the regime is no longer the neutral fallback."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from broker_core.clock import KST
from broker_core.paper.data import KrxData
from broker_core.paper.index import SOURCE, DerivedIndex
from oms.settings import PaperConfig, load_config
from strategies.kmp.config import KmpConfig, UniverseConfig
from strategies.kmp.strategy import KmpStrategy
from strategies.sdk import OmsClient
from tests.support.oms_server import READ_KEY, STRATEGY_KEYS, auth, oms_settings, running_oms, sim_clock
from tests.support.wait import until

DAY = date(2026, 2, 27)
SYMBOLS = ["005930", "000660", "055550"]


def _config() -> Any:
    config = load_config()
    config.paper = PaperConfig.model_validate({**config.paper.model_dump(), "symbols": SYMBOLS})
    return config


def _at(t: time) -> datetime:
    return datetime.combine(DAY, t, KST)


async def test_the_oms_serves_the_derived_index_and_refuses_to_trade_it(tmp_path: Path) -> None:
    krx = KrxData()
    truth = DerivedIndex(krx).path("KOSPI", DAY)
    assert truth is not None
    async with running_oms(oms_settings(tmp_path), _config(), clock=sim_clock(9, 20, speed=30)) as oms:
        before = oms.runtime.clock.now()
        q = await oms.get("/api/v1/marketdata/quote/KOSPI")
        after = oms.runtime.clock.now()
        assert q["symbol"] == "KOSPI" and q["derived"] is True and q["source"] == SOURCE, q
        assert q["constituents"] == 52 and q["anchored"] is True and q["bid"] is None
        assert q["prev_close"] == krx.index_bars("KOSPI", date(2026, 2, 20), date(2026, 2, 26))[-1].close
        possible = {round(v, 2) for v, _ in filter(None, (truth.value_at(before), truth.value_at(after)))}
        assert q["last"] in possible, (q["last"], possible)  # the path's value at the OMS clock, no later bar

        kosdaq = await oms.get("/api/v1/marketdata/quote/KOSDAQ")
        assert kosdaq["derived"] is True and kosdaq["constituents"] == 8

        bars = (await oms.get("/api/v1/marketdata/bars/KOSPI", start=_at(time(9, 0)).isoformat()))["bars"]
        now = oms.runtime.clock.now()
        assert len(bars) >= 20 and bars[0]["ts"] == _at(time(9, 0)).isoformat()
        assert all(datetime.fromisoformat(b["ts"]) + timedelta(minutes=1) <= now for b in bars)
        assert [b["close"] for b in bars] == [round(float(c), 2) for c in truth.closes[: len(bars)]]

        daily = (await oms.get("/api/v1/marketdata/daily/KOSPI", start="2026-02-23", end="2026-02-27"))["bars"]
        real = krx.index_bars("KOSPI", date(2026, 2, 23), date(2026, 2, 26))
        assert [b["close"] for b in daily] == [b.close for b in real]  # today's row only after the close

        reply = (
            await oms.intent(
                STRATEGY_KEYS["KMP"],
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="KOSPI",
                desired_qty=1,
                constraints={"order_type": "LIMIT", "limit_price": 6_000.0},
            )
        ).json()
        assert reply["status"] == "REJECTED" and reply["reason_code"] == "UNKNOWN_SYMBOL", reply
        unknown = await oms.http.get("/api/v1/marketdata/quote/999999", headers=auth(READ_KEY))
        assert unknown.status_code == 404  # only the index symbols pass the proxy's symbol check


async def test_kmp_reaches_a_non_neutral_regime_on_paper(tmp_path: Path) -> None:
    krx = KrxData()
    kospi, kosdaq = DerivedIndex(krx).path("KOSPI", DAY), DerivedIndex(krx).path("KOSDAQ", DAY)
    assert kospi is not None and kosdaq is not None
    async with running_oms(oms_settings(tmp_path), _config(), clock=sim_clock(9, 20, speed=30)) as oms:
        config = KmpConfig(universe=UniverseConfig(symbols=SYMBOLS))
        async with OmsClient(oms.url, STRATEGY_KEYS["KMP"], "KMP") as client:
            kmp = KmpStrategy(config, client, oms.runtime.clock, sectors={}, heartbeat_sec=5)
            run = asyncio.create_task(kmp.run())
            try:
                await until(
                    lambda: kmp.engine.regime is not None and kmp.engine.regime.efficiency is not None,
                    timeout=60,
                    what="a KMP regime computed on index data",
                )
            finally:
                kmp.request_stop()
                await asyncio.wait_for(run, 30)
    regime = kmp.engine.regime
    assert regime is not None and "index" not in kmp.unavailable, kmp.unavailable
    assert regime.kospi_chg is not None and regime.kosdaq_chg is not None
    assert kmp.engine.index["KOSPI"].prior_close == kospi.prev_close
    assert kmp.engine.index["KOSDAQ"].prior_close == kosdaq.prev_close
    closes = kmp.engine.index["KOSPI"].closes
    assert len(closes) >= 10 and closes == [round(float(c), 2) for c in kospi.closes[: len(closes)]]
    # K4 inputs are live: the change vs the prior close and the chop ER come from the derived path
    assert regime.kospi_chg == kmp.engine.index["KOSPI"].last / kospi.prev_close - 1
    assert 0.0 <= regime.efficiency <= 1.0  # type: ignore[operator]
