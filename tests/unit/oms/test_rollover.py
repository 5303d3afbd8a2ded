"""The trading-day boundary of the market calendar, and the rollover loop on a running clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from broker_core.calendars import is_trading_day, next_trading_day
from broker_core.clock import KST, VirtualClock, Windows
from broker_core.models import Account
from oms.core.risk import DailyLossLatch, LossLevel
from oms.core.rollover import DayRollover, day_start, next_day_start, session_day
from oms.core.state import OmsState
from oms.core.types import RiskDailyPortfolioRecord
from oms.store.journal import Journal
from tests.support.wait import until

FRIDAY = date(2026, 2, 27)
TUESDAY, WEDNESDAY = date(2026, 3, 3), date(2026, 3, 4)


def at(day: date, hh: int, mm: int = 0, ss: float = 0.0) -> datetime:
    return datetime.combine(day, datetime.min.time(), KST) + timedelta(hours=hh, minutes=mm, seconds=ss)


def test_a_day_runs_from_its_midnight_and_a_weekend_belongs_to_the_day_before() -> None:
    assert session_day(at(FRIDAY, 0)) == FRIDAY
    assert session_day(at(FRIDAY, 23, 59, 59)) == FRIDAY
    saturday = FRIDAY + timedelta(days=1)
    assert not is_trading_day(saturday) and session_day(at(saturday, 12)) == FRIDAY
    monday = FRIDAY + timedelta(days=3)
    assert next_day_start(at(FRIDAY, 10)) == day_start(next_trading_day(FRIDAY)) == next_day_start(at(monday, 12))
    assert next_day_start(at(TUESDAY, 10)) == at(WEDNESDAY, 0)
    # read in the exchange's zone: 2026-03-03T15:00Z is already Wednesday in Seoul
    assert session_day(datetime(2026, 3, 3, 15, 0, tzinfo=UTC)) == WEDNESDAY
    assert session_day(datetime(2026, 3, 3, 14, 59, tzinfo=UTC)) == TUESDAY


async def test_the_loop_rolls_over_when_a_running_clock_crosses_the_boundary(tmp_path: Path) -> None:
    clock = VirtualClock(at(TUESDAY, 23, 59, 59.6), speed=1.0)
    state = OmsState(instance_id="t", trading_day=TUESDAY)
    state.account = Account(currency="KRW", cash=1_000.0, buyable_cash=1_000.0, equity=1_500.0)
    state.daily_portfolio = RiskDailyPortfolioRecord(trading_day=str(TUESDAY), start_equity=2_000.0, halted=True)
    latch = DailyLossLatch()
    latch.restore(TUESDAY, LossLevel.HALT)
    journal = Journal(tmp_path / "journal.db")
    days: list[date] = []
    rollover = DayRollover(state, journal, clock, latch, on_new_day=[lambda day, _now: days.append(day)])
    beats: list[datetime] = []
    task = asyncio.create_task(rollover.run(lambda: beats.append(clock.now()), poll_s=60))
    try:
        assert rollover.maybe_roll() is None, "still Tuesday"
        await until(lambda: state.trading_day == WEDNESDAY, timeout=5, what="the rollover at midnight")
        assert days == [WEDNESDAY] and rollover.rollovers == 1
        daily = state.daily_portfolio
        assert daily is not None and daily.trading_day == str(WEDNESDAY)
        assert (daily.start_equity, daily.min_equity, daily.realized_pnl) == (1_500.0, 1_500.0, 0.0)
        assert not daily.halted
        assert latch.level is None and latch.trading_day == WEDNESDAY
        assert [e.row["trading_day"] for e in journal.pending() if e.table == "risk_daily_portfolio"] == [
            str(WEDNESDAY)
        ]
        assert rollover.maybe_roll() is None, "once per day"
        assert beats and beats[-1] >= at(WEDNESDAY, 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        journal.close()


async def test_with_a_multi_day_virtual_clock_the_rollover_happens_at_the_jump(tmp_path: Path) -> None:
    windows = Windows(first=TUESDAY, last=WEDNESDAY, open=dtime(7, 30), close=dtime(21, 0))
    clock = VirtualClock(at(TUESDAY, 20, 59, 59.5), speed=1.0, windows=windows)
    state = OmsState(instance_id="t", trading_day=TUESDAY)
    journal = Journal(tmp_path / "journal.db")
    rollover = DayRollover(state, journal, clock, DailyLossLatch(), fallback_equity=lambda: 1_000.0)
    task = asyncio.create_task(rollover.run(poll_s=3600))
    try:
        await until(lambda: state.trading_day == WEDNESDAY, timeout=5, what="the rollover at the night's jump")
        assert rollover.last is not None and rollover.last.previous == TUESDAY
        assert at(WEDNESDAY, 7, 30) <= clock.now() < at(WEDNESDAY, 7, 31), "woken at the jump, not at midnight"
        assert state.daily_portfolio is not None and state.daily_portfolio.start_equity == 1_000.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        journal.close()
