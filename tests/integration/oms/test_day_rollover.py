"""A long-running OMS rolls its per-day state over at the next trading day's start.

A real OMS (uvicorn, paper broker, SQLite) on a :class:`ManualClock`: day 1 builds up per-day state
(an entry lock, the day-loss halt, idempotency entries, a cached quote) next to an allocation; then the
clock is moved past the session boundary into the next trading day. The paper replay is of the trading
day before day 1, so it lies wholly in the past and never moves the clock itself.

Idempotency rule under test: keys are per trading day (derived keys contain the date; an explicit key
de-duplicates within the day it was first used and is decided anew on a later day).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest

from broker_core.calendars import next_trading_day, previous_trading_day
from broker_core.clock import KST, ManualClock, VirtualClock, Windows, write_anchor
from broker_core.paper.broker import PaperBroker
from oms.core.risk import LossLevel
from oms.core.rollover import day_start
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, load_config
from tests.support.oms_server import SESSION, STRATEGY_KEYS, Oms, oms_settings, running_oms
from tests.support.wait import until
from trader.venues import build_venue

DAY1 = datetime.fromisoformat(SESSION).date()
DAY2 = next_trading_day(DAY1)
LOCKED, HELD = "005930", "000660"


def _config() -> OmsConfig:
    config = load_config()
    # a lock that would outlive the day: only the rollover can end it
    config.risk = config.risk.model_copy(update={"entry_lock_sec": {**config.risk.entry_lock_sec, "KMP": 7 * 86400}})
    return config


async def _advance(oms: Oms, clock: ManualClock, seconds: float) -> None:
    """Move the clock and wait for the reconciler to complete a cycle at the new time."""
    reconciler = oms.runtime.reconciler
    assert reconciler is not None
    cycles = reconciler.cycles
    clock.advance(seconds)
    await until(lambda: reconciler.cycles > cycles, what="a reconcile cycle after the clock moved")


async def _intent(oms: Oms, strategy: str, **body: Any) -> dict[str, Any]:
    resp = await oms.intent(STRATEGY_KEYS[strategy], strategy_id=strategy, **body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_day_rollover_resets_per_day_state_and_keeps_positions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(datetime.combine(DAY1, datetime.min.time(), KST).replace(hour=10))
    settings = oms_settings(tmp_path, oms_paper_date=str(previous_trading_day(DAY1)))
    runtime = OmsRuntime(settings, _config(), venue=build_venue, clock=clock)
    async with running_oms(settings, runtime.config, runtime=runtime) as oms:
        state, intents, broker = runtime.state, runtime.intents, runtime.broker
        assert intents is not None and isinstance(broker, PaperBroker) and runtime.md_proxy is not None
        assert state.trading_day == DAY1
        # -- day 1 -------------------------------------------------------------------------------------
        quote = await oms.get(f"/api/v1/marketdata/quote/{LOCKED}")
        entry = await _intent(
            oms,
            "KMP",
            intent_type="ENTER",
            symbol=LOCKED,
            desired_qty=1,
            constraints={"stop_price": quote["last"] * 1.02},  # held until the stop trades: the lock stays
        )
        assert entry["status"] == "ACCEPTED", entry
        assert (await _intent(oms, "KPR", intent_type="ENTER", symbol=LOCKED, desired_qty=1))[
            "reason_code"
        ] == "ENTRY_LOCKED"
        first = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="dup-1")
        again = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="dup-1")
        assert again["intent_id"] == first["intent_id"], "same key, same day: the stored decision"
        await _intent(oms, "PCIM", intent_type="MODIFY_RISK", symbol="*")  # a derived key
        equity = (await oms.get("/api/v1/state/account"))["equity"]
        broker.inject_cash(-0.04 * equity)  # a 4 % day loss: past the halt level
        await _advance(oms, clock, 61)
        await until(lambda: intents.loss_latch.level is LossLevel.HALT, what="the day-loss halt on day 1")
        held_px = (await oms.get(f"/api/v1/marketdata/quote/{HELD}"))["last"]
        broker.inject_position(HELD, 10, held_px)  # shares nobody bought: an allocation to _UNKNOWN_
        for _ in range(5):  # drift is acted on once confirmed over consecutive cycles
            await _advance(oms, clock, 61)
            if state.ledger.allocation(HELD, "_UNKNOWN_") is not None:
                break
        alloc_day1 = (await oms.get(f"/api/v1/positions/{HELD}"))["allocations"]
        assert alloc_day1["_UNKNOWN_"]["qty"] == 10 and alloc_day1["_UNKNOWN_"]["entry_ts"].startswith(str(DAY1))
        assert runtime.md_proxy.cached > 0 and len(state.entry_locks) == 1 and len(state.intents_by_key) >= 3
        # -- across the boundary into day 2 ------------------------------------------------------------
        with caplog.at_level(logging.INFO, logger="oms.rollover"):
            clock.set(datetime.combine(DAY2, datetime.min.time(), KST).replace(hour=9, minute=30))
            await until(lambda: state.trading_day == DAY2, what="the rollover to day 2")
        assert any("reason=DAY_ROLLOVER" in r.getMessage() for r in caplog.records)
        assert state.intents_by_key == {} or all(
            r.intent.received_at >= day_start(DAY2) for r in state.intents_by_key.values()
        ), "yesterday's idempotency entries are pruned"
        assert len(state.entry_locks) == 0 and intents.loss_latch.level is None
        assert runtime.md_proxy.cached == 0, "expired market-data answers are dropped"
        assert state.intent_times == {} and state.daily_strategy == {}
        health = (await oms.http.get("/health")).json()
        assert health["trading_day"] == str(DAY2) and health["status"] == "ok", health
        # the new day's risk row: start equity from the account, P&L 0, not halted
        daily = state.daily_portfolio
        assert daily is not None and daily.trading_day == str(DAY2) and not daily.halted
        assert state.account is not None and daily.start_equity == pytest.approx(state.account.equity)
        account = await oms.get("/api/v1/state/account")
        assert account["daily_pnl"] == pytest.approx(0.0, abs=1.0), account
        assert account["start_equity"] == pytest.approx(daily.start_equity)
        assert runtime.reader is not None
        rows = await runtime.reader.load_state(str(DAY2), intents_since=day_start(DAY2))
        assert [(r.trading_day, r.halted) for r in rows["risk_daily_portfolio"]] == [(str(DAY2), False)]
        # positions and allocations persist with their entry_ts
        assert (await oms.get(f"/api/v1/positions/{HELD}"))["allocations"] == alloc_day1
        # the day-1 lock and halt are gone: another strategy's entry passes arbitration and the risk gateway
        # and becomes an order (which the closed paper exchange of the replayed day then refuses)
        kpr = await _intent(oms, "KPR", intent_type="ENTER", symbol=LOCKED, desired_qty=1)
        assert kpr["order_id"] and kpr["reason_code"] not in ("ENTRY_LOCKED", "DAILY_LOSS_HALT"), kpr
        # a day-1 idempotency key is decided anew on day 2 (and then de-duplicates on day 2)
        fresh = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="dup-1")
        assert fresh["intent_id"] != first["intent_id"]
        repeat = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="dup-1")
        assert repeat["intent_id"] == fresh["intent_id"]
        assert "oms_day_rollovers_total 1.0" in (await oms.http.get("/metrics")).text
        # no second rollover within the day
        await _advance(oms, clock, 3600)
        assert state.trading_day == DAY2 and runtime.rollover is not None and runtime.rollover.rollovers == 1


async def test_first_intent_of_the_new_day_rolls_over_before_it_is_decided(tmp_path: Path) -> None:
    clock = ManualClock(datetime.combine(DAY1, datetime.min.time(), KST).replace(hour=10))
    settings = oms_settings(tmp_path, oms_paper_date=str(previous_trading_day(DAY1)))
    runtime = OmsRuntime(settings, _config(), venue=build_venue, clock=clock)
    async with running_oms(settings, runtime.config, runtime=runtime) as oms:
        first = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="k")
        # past the boundary by a hair: the rollover loop sleeps until the boundary on the clock, but an intent
        # arriving at that very instant must already see the new day
        boundary = day_start(DAY2)
        clock.set(boundary + timedelta(microseconds=1))
        again = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="k")
        assert again["intent_id"] != first["intent_id"]
        assert runtime.state.trading_day == DAY2
        assert runtime.rollover is not None and runtime.rollover.rollovers == 1


async def test_an_explicit_key_reused_on_a_later_day_reaches_the_database(tmp_path: Path) -> None:
    clock = ManualClock(datetime.combine(DAY1, datetime.min.time(), KST).replace(hour=10))
    settings = oms_settings(tmp_path, oms_paper_date=str(previous_trading_day(DAY1)))
    runtime = OmsRuntime(settings, _config(), venue=build_venue, clock=clock)
    async with running_oms(settings, runtime.config, runtime=runtime) as oms:
        first = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="same")
        clock.set(day_start(DAY2) + timedelta(hours=9))
        second = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="same")
        assert second["intent_id"] != first["intent_id"]
        drainer = runtime.drainer
        assert drainer is not None
        await until(lambda: drainer.backlog == 0, what="journal drained")
        assert drainer.rows_rejected == 0, "both days' intents are in the database"


async def test_a_multi_day_virtual_clock_rolls_the_oms_over_at_the_night_jump(tmp_path: Path) -> None:
    anchor = tmp_path / "anchor"
    windows = Windows(first=DAY1, last=DAY2, open=dtime(7, 30), close=dtime(21, 0))
    # time stands at day 1, 20:59:57 until the anchor is written (after the OMS is ready, as the launcher does)
    start = datetime.combine(DAY1, dtime(20, 59, 57), KST)
    clock = VirtualClock(start, speed=3.0, windows=windows, anchor_file=str(anchor))
    settings = oms_settings(tmp_path, oms_paper_date=str(previous_trading_day(DAY1)))
    runtime = OmsRuntime(settings, _config(), venue=build_venue, clock=clock)
    async with running_oms(settings, runtime.config, runtime=runtime) as oms:
        first = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="k")
        assert runtime.state.trading_day == DAY1
        write_anchor(anchor)
        await until(lambda: runtime.state.trading_day == DAY2, what="the rollover at the jump into day 2")
        assert clock.now() >= datetime.combine(DAY2, dtime(7, 30), KST)
        health = (await oms.http.get("/health")).json()
        assert health["trading_day"] == str(DAY2) and health["status"] == "ok", health
        assert runtime.state.intents_by_key == {}
        again = await _intent(oms, "KPR", intent_type="CANCEL_ORDERS", symbol="*", idempotency_key="k")
        assert again["intent_id"] != first["intent_id"]
