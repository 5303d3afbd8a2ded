"""KPR wiring on the SDK against a fake OMS over HTTP: provider probes (paper → two-pillar, investor
STALE), incremental REST polling, the ENTER intent's shape, recovery from OMS allocations."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from broker_core.clock import ManualClock
from strategies.kpr.config import KprConfig, UniverseConfig
from strategies.kpr.engine import ProviderMode
from strategies.kpr.fsm import State
from strategies.kpr.strategy import CONFIG_MODEL, KprStrategy, build
from strategies.sdk.bars import Bar
from strategies.sdk.models import Allocation
from tests.unit.kpr._fake_oms import FakeOms
from tests.unit.kpr._helpers import cache, ts


def _day_bars() -> list[dict]:
    """Scenario 1's day as REST bars (``ts`` = bar start): flat, HOD 10:00, panic 10:10, four reclaim
    closes 10:11–10:14 and a strong bar at 10:15."""
    out = []

    def add(t: datetime, o: float, h: float, lo: float, c: float, v: float) -> None:
        out.append({"ts": t, "open": o, "high": h, "low": lo, "close": c, "volume": v})

    for m in range(60):
        add(ts(9, m), 10_000, 10_000, 10_000, 10_000, 1_000)
    add(ts(10, 0), 10_000, 10_100, 10_000, 10_000, 1_050)
    for m in range(1, 10):
        add(ts(10, m), 10_000, 10_000, 10_000, 10_000, 1_000)
    add(ts(10, 10), 9_700, 9_700, 9_600, 9_650, 100)
    for m in range(11, 15):
        add(ts(10, m), 9_640, 9_700, 9_630, 9_690, 1_000)
    add(ts(10, 15), 9_640, 9_700, 9_630, 9_695, 5_000)
    return out


def _strategy(fake: FakeOms, now: datetime) -> tuple[KprStrategy, ManualClock]:
    clock = ManualClock(now)
    cfg = KprConfig(universe=UniverseConfig(symbols=["A"]))
    strat = build(cfg, fake.client(), clock)
    strat.sectors = {"A": "S1"}
    return strat, clock


async def test_paper_providers_investor_stale_and_two_pillars_logged_once():
    fake = FakeOms()
    fake.investor["A"] = [{"date": "2026-02-26", "foreign_net": 10, "inst_net": 5}]  # completed sessions only
    strat, _ = _strategy(fake, ts(9, 5))
    await strat._probe_providers()
    await strat._probe_providers()
    assert strat.engine.investor_mode is ProviderMode.DAILY_ONLY
    assert strat.engine.program_mode is ProviderMode.UNAVAILABLE
    assert strat.decision_counts["KPR_PROVIDER_MODE"] == 2 and strat.decision_counts["KPR_PROGRAM_UNAVAILABLE"] == 1
    st = strat.status()["kpr"]["providers"]
    assert (st["investor"], st["program"], st["pillars"], st["investor_signal"]) == (
        "DAILY_ONLY",
        "UNAVAILABLE",
        2,
        "STALE",
    )
    await strat.oms.aclose()


async def test_rest_polling_is_incremental_and_a_fresh_bar_sends_the_enter():
    fake = FakeOms()
    fake.minute_bars["A"] = _day_bars()
    strat, clock = _strategy(fake, ts(10, 16))
    strat.engine.premarket(clock.now(), [cache("A", atr20=300)])
    strat.engine.set_provider_mode(clock.now(), "investor", ProviderMode.DAILY_ONLY)
    strat.engine.set_provider_mode(clock.now(), "program", ProviderMode.UNAVAILABLE)
    await strat._account_job()
    await strat._poll_job()  # first poll: 09:00 … 10:15, one call
    windows = [(q["start"], q["end"]) for q in fake.calls("/api/v1/marketdata/bars/A")]
    assert windows == [(ts(9, 0).isoformat(), ts(10, 15).isoformat())]
    assert strat.engine.state_of("A") is State.ENTRY_PENDING
    (intent,) = fake.intents
    assert intent["intent_type"] == "ENTER" and intent["strategy_id"] == "KPR" and intent["symbol"] == "A"
    assert intent["desired_qty"] == 14_902 and intent["idempotency_key"] == "KPR:A:ENTER:20260227T101500"
    c = intent["constraints"]
    assert (c["order_type"], c["limit_price"], c["cancel_after_sec"]) == ("LIMIT", 9_730, 30)
    rp = intent["risk_payload"]
    assert rp["stop_px"] == pytest.approx(9_571.2) and rp["confidence"] == "YELLOW"
    assert rp["rationale_code"] == "KPR_ENTRY"
    assert "A" in strat.stream.symbols  # HOT → asked for on the stream
    # next poll (HOT without a granted slot: WARM cadence): only the last bar held, again
    clock.set(ts(10, 16, 30))
    await strat._poll_job()
    windows = [(q["start"], q["end"]) for q in fake.calls("/api/v1/marketdata/bars/A")]
    assert windows[1:] == [(ts(10, 15).isoformat(), ts(10, 15).isoformat())]
    clock.set(ts(10, 18, 5))
    await strat._poll_job()
    windows = [(q["start"], q["end"]) for q in fake.calls("/api/v1/marketdata/bars/A")]
    assert windows[2:] == [(ts(10, 15).isoformat(), ts(10, 17).isoformat())]
    await strat.oms.aclose()


async def test_a_rejected_enter_goes_back_to_the_engine():
    fake = FakeOms()
    fake.minute_bars["A"] = _day_bars()
    fake.intent_reply = lambda body: {"intent_id": "i1", "status": "REJECTED", "reason_code": "ENTRY_LOCKED"}
    strat, clock = _strategy(fake, ts(10, 16))
    strat.engine.premarket(clock.now(), [cache("A", atr20=300)])
    strat.engine.set_provider_mode(clock.now(), "program", ProviderMode.UNAVAILABLE)
    await strat._account_job()
    await strat._poll_job()
    assert strat.engine.state_of("A") is State.ACCEPTING and strat.engine.syms["A"].acc.tries == 1
    assert strat.intent_counts == {"ENTER:REJECTED": 1}
    await strat.oms.aclose()


async def test_recovery_adopts_the_allocation_and_its_partial():
    fake = FakeOms()
    strat, clock = _strategy(fake, ts(11, 0))
    strat.engine.premarket(clock.now(), [cache("A", atr20=300)])
    strat.allocations = {
        "A": Allocation(
            qty=50,
            cost_basis=10_000,
            entry_ts=ts(10, 40),
            soft_stop_px=9_800,
            initial_stop_px=9_800,
            time_stop_ts=ts(11, 25),
        ),
    }
    fake.allocations = {s: a.model_dump(mode="json") for s, a in strat.allocations.items()}
    fake.fills = [
        {
            "execution_id": "e1",
            "order_id": "o1",
            "strategy_id": "KPR",
            "symbol": "A",
            "side": "SELL",
            "qty": 50,
            "price": 10_300,
            "ts": ts(10, 50).isoformat(),
        }
    ]
    await strat.on_recover()
    pos = strat.engine.position_of("A")
    assert pos is not None and pos.qty == 50 and pos.partial_done and pos.stop == 9_800
    assert pos.time_stop_ts == ts(11, 25) and strat.decision_counts["KPR_POSITION_RECOVERED"] == 1
    assert fake.intents == []  # the OMS already holds the stop and the time stop
    clock.set(ts(11, 25))
    await strat._clock_job()
    assert [i["intent_type"] for i in fake.intents] == ["EXIT"]
    assert fake.intents[0]["risk_payload"]["rationale_code"] == "KPR_X_TIME"
    await strat.oms.aclose()


def test_build_is_the_runner_entry_point():
    assert CONFIG_MODEL is KprConfig
    strat, _ = _strategy(FakeOms(), ts(8, 0))
    names = set(strat.scheduler.stats)
    assert {"kpr.premarket", "kpr.poll", "kpr.clock", "kpr.account", "kpr.index", "kpr.quotes"} <= names


async def test_a_partial_stream_bar_is_replaced_by_rest_and_the_gap_filled_off_the_stream():
    fake = FakeOms()
    fake.minute_bars["A"] = _day_bars()
    strat, clock = _strategy(fake, ts(9, 5, 2))
    strat.engine.premarket(clock.now(), [cache("A")])
    await strat.subscribe(["A"])
    partial = Bar("A", ts(9, 4), 10_000, 10_000, 10_000, 10_000, 7, 70_000.0, partial=True)
    await strat.on_bar(partial)
    await asyncio.gather(*strat._tasks)
    assert [(q["start"], q["end"]) for q in fake.calls("/api/v1/marketdata/bars/A")] == [
        (ts(9, 0).isoformat(), ts(9, 4).isoformat())
    ]
    series = strat.engine.syms["A"].series
    assert series.final_minutes == [540, 541, 542, 543, 544] and series.bars[544].volume == 1_000  # REST, not 7
    # the next complete stream bar goes straight to the engine (no REST call)
    clock.set(ts(9, 6, 2))
    await strat.on_bar(Bar("A", ts(9, 5), 10_000, 10_000, 10_000, 10_000, 900, 9_000_000.0))
    assert len(fake.calls("/api/v1/marketdata/bars/A")) == 1 and series.bars[545].volume == 900
    await strat.oms.aclose()


async def test_a_denied_slot_runs_on_rest_and_is_asked_for_again_later():
    fake = FakeOms()
    fake.minute_bars["A"] = _day_bars()
    strat, clock = _strategy(fake, ts(10, 16))
    strat.engine.premarket(clock.now(), [cache("A", atr20=300)])
    strat.engine.set_provider_mode(clock.now(), "program", ProviderMode.UNAVAILABLE)
    await strat._account_job()
    await strat._poll_job()
    assert "A" in strat.stream.symbols
    # the OMS answers the subscribe: no slot (the account's 40 are taken)
    strat.stream._control({"type": "subscribed", "granted": [], "denied": {"A": "CAPACITY_FULL"}})
    clock.set(ts(10, 16, 5))
    await strat._clock_job()
    assert strat.decision_counts["KPR_SLOT_DENIED"] == 1
    assert "A" not in strat.stream.symbols  # dropped from the wanted set; polled over REST meanwhile
    assert strat.engine.take_due_polls(ts(10, 16, 29)) == [] and strat.engine.take_due_polls(ts(10, 16, 30)) == ["A"]
    clock.set(ts(10, 18, 5))  # slot_retry_sec (120 s) later it is asked for again
    await strat._clock_job()
    assert "A" in strat.stream.symbols
    await strat.oms.aclose()


async def test_investor_provider_live_when_todays_row_is_served_and_unavailable_without_a_route():
    fake = FakeOms()
    fake.investor["A"] = [{"date": "2026-02-27", "foreign_net": 3_000, "inst_net": 1_000, "close": 10_000}]
    strat, clock = _strategy(fake, ts(10, 0))
    await strat._probe_providers()
    assert strat.engine.investor_mode is ProviderMode.LIVE
    strat.engine.premarket(clock.now(), [cache("A")])
    strat.engine.on_position_recovered("A", 10, 10_000, clock.now(), stop_px=9_800, entry_ts=ts(9, 50))  # HOT
    await strat._provider_job()
    assert strat.engine.syms["A"].investor is not None and strat.engine.syms["A"].investor.foreign == 30_000_000
    await strat.oms.aclose()

    gone = FakeOms(no_proxy=True)
    strat, _ = _strategy(gone, ts(10, 0))
    await strat._probe_providers()
    assert strat.engine.investor_mode is ProviderMode.UNAVAILABLE
    assert strat.engine.program_mode is ProviderMode.UNAVAILABLE
    await strat.oms.aclose()


def _fill(execution_id: str, side: str, qty: int, at: datetime) -> dict:
    return {
        "execution_id": execution_id,
        "order_id": f"o-{execution_id}",
        "strategy_id": "KPR",
        "symbol": "A",
        "side": side,
        "qty": qty,
        "price": 10_200,
        "ts": at.isoformat(),
    }


async def test_a_sell_filled_between_the_reads_of_a_reconnect_is_not_adopted_again():
    """After a reconnect the allocations are read (A still held), then the exit's SELL fills, then the fills are
    read and replayed: the position is closed, and the older snapshot must not bring it back."""
    fake = FakeOms()
    fake.allocations = {
        "A": {"qty": 50, "cost_basis": 10_000, "entry_ts": ts(10, 40).isoformat(), "soft_stop_px": 9_800},
    }
    strat, clock = _strategy(fake, ts(11, 0))
    strat.engine.premarket(clock.now(), [cache("A", atr20=300)])
    await strat.recover()  # the start
    pos = strat.engine.position_of("A")
    assert pos is not None and pos.qty == 50
    clock.set(ts(11, 5))
    fake.fills = [_fill("e1", "SELL", 50, ts(11, 4))]  # the allocation read above it still shows 50
    strat.stream.connects = 2
    await strat.recover()
    pos = strat.engine.position_of("A")
    assert pos is None or pos.qty == 0
    assert strat.decision_counts["KPR_POSITION_RECOVERED"] == 1
    await strat.oms.aclose()
