"""Volatility interruptions from the broker's feed reach risk and the stream (paper exchange).

A tape for one symbol jumps 10% above the static reference: the paper exchange halts it for two minutes
(a static VI). The OMS must defer entries on it with VI_COOLDOWN while the VI lasts and for
``risk.vi_cooldown_sec`` after it ends, and push ``vi`` start/end events to the strategies that subscribed
the symbol and to those holding it — no admin call involved.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from broker_core.clock import KST
from broker_core.contract.wire import ViEvent
from broker_core.models import Side, Tick
from broker_core.paper.broker import PaperBroker
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import StaticFeed
from broker_core.paper.matching import MatchingEngine
from oms.runtime import OmsRuntime
from oms.settings import load_config
from oms.venue import Venue
from tests.integration.marketdata.wsclient import WsClient
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until

SESSION = date(2026, 2, 27)
SYMBOL = "005930"
BASE = 10_000.0
TRIGGER = datetime(2026, 2, 27, 9, 36, tzinfo=KST)
"""The first print at +10% of the static reference (the opening print at BASE)."""
COOLDOWN_S = 60.0


def tape() -> list[Tick]:
    ticks = [Tick(SYMBOL, datetime(2026, 2, 27, 9, 0, tzinfo=KST), BASE, 1_000, Side.BUY)]
    t = datetime(2026, 2, 27, 9, 30, 5, tzinfo=KST)
    while t < datetime(2026, 2, 27, 9, 50, tzinfo=KST):
        ticks.append(Tick(SYMBOL, t, BASE if t < TRIGGER else BASE * 1.1, 1_000, Side.BUY))
        t += timedelta(seconds=5)
    return ticks


def runtime(tmp_path: Path) -> OmsRuntime:
    clock = sim_clock(9, 30, speed=60)
    exchange = PaperExchange(
        StaticFeed(SESSION, tape(), {SYMBOL: BASE}), clock, MatchingEngine(participation=1.0, session_date=SESSION)
    )
    config = load_config()
    config.risk = config.risk.model_copy(update={"vi_cooldown_sec": COOLDOWN_S, "entry_lock_sec": {"KPR": 0.0}})
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 5, "max_interval_s": 10})
    venue = Venue(broker=PaperBroker(exchange), exchange=exchange, known_symbols={SYMBOL})
    return OmsRuntime(oms_settings(tmp_path), config, venue=venue, clock=clock)


def enter(strategy: str, key: str) -> dict[str, Any]:
    return {
        "intent_type": "ENTER",
        "strategy_id": strategy,
        "symbol": SYMBOL,
        "desired_qty": 3,
        "constraints": {"order_type": "MARKETABLE_LIMIT"},
        "idempotency_key": key,
    }


async def _held(oms: Oms, strategy: str) -> bool:
    pos = (await oms.get("/api/v1/positions")).get(SYMBOL) or {}
    return bool(pos.get("allocations", {}).get(strategy, {}).get("qty"))


async def test_a_static_vi_defers_entries_and_is_pushed_to_subscribers_and_holders(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path), runtime=runtime(tmp_path)) as oms:
        assert oms.runtime.clock.now() < TRIGGER - timedelta(minutes=1), "the OMS started too late for the tape"
        # KPR holds the symbol (bought before the VI) but does not subscribe it; KMP subscribes it; PCIM neither
        holder = (await oms.intent(STRATEGY_KEYS["KPR"], **enter("KPR", "kpr-before"))).json()
        assert holder["status"] in ("ACCEPTED", "EXECUTED"), holder
        await until(lambda: _held(oms, "KPR"), timeout=30, what="KPR holds the symbol")
        kmp = await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "kmp")
        kpr = await WsClient.open(oms.url, STRATEGY_KEYS["KPR"], "kpr")
        pcim = await WsClient.open(oms.url, STRATEGY_KEYS["PCIM"], "pcim")
        try:
            answer = await kmp.subscribe([SYMBOL])
            assert answer["granted"] == [SYMBOL], answer
            assert oms.runtime.clock.now() < TRIGGER, "subscribed after the VI; the tape starts too early"

            await until(lambda: kmp.of("vi"), timeout=60, what="the VI start on the subscriber's stream")
            start = ViEvent.model_validate(kmp.of("vi")[0])
            assert start.symbol == SYMBOL and start.active is True and start.ts == TRIGGER, start
            await until(lambda: kpr.of("vi"), timeout=10, what="the VI start on the holder's stream")
            assert kpr.of("vi")[0] == kmp.of("vi")[0]

            # while the VI lasts an entry is deferred with VI_COOLDOWN (no admin call made)
            during = (await oms.intent(STRATEGY_KEYS["KMP"], **enter("KMP", "kmp-during"))).json()
            assert during["status"] == "DEFERRED" and during["reason_code"] == "VI_COOLDOWN", during
            assert datetime.fromisoformat(during["cooldown_until"]) > oms.runtime.clock.now()

            await until(lambda: len(kmp.of("vi")) >= 2, timeout=60, what="the VI end on the subscriber's stream")
            end = ViEvent.model_validate(kmp.of("vi")[1])
            assert end.symbol == SYMBOL and end.active is False and end.ts >= TRIGGER + timedelta(minutes=2), end
            await until(lambda: len(kpr.of("vi")) >= 2, timeout=10, what="the VI end on the holder's stream")
            assert [m["active"] for m in kpr.of("vi")] == [True, False]

            # after it ends, entries wait the configured cooldown, then go through
            after = (await oms.intent(STRATEGY_KEYS["KMP"], **enter("KMP", "kmp-after"))).json()
            assert after["status"] == "DEFERRED" and after["reason_code"] == "VI_COOLDOWN", after
            until_ts = datetime.fromisoformat(after["cooldown_until"])
            assert until_ts == end.ts + timedelta(seconds=COOLDOWN_S), (until_ts, end.ts)
            await until(lambda: oms.runtime.clock.now() > until_ts, timeout=30, what="the cooldown over")
            retried = (await oms.intent(STRATEGY_KEYS["KMP"], **enter("KMP", "kmp-retry"))).json()
            assert retried["status"] in ("ACCEPTED", "EXECUTED"), retried
            assert pcim.of("vi") == []
        finally:
            for c in (kmp, kpr, pcim):
                await c.close()
