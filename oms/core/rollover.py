"""The trading-day rollover of a long-running OMS.

The OMS's "day" is the market calendar's trading day. It starts at 00:00 (exchange time) of a trading
day and lasts until 00:00 of the next one, so a weekend or holiday belongs to the day before it. This is
the same day the rest of the OMS keys on: derived idempotency keys and the day-loss latch carry the
date, and a restart rebuilds from the rows of the day since its 00:00 (``oms/rebuild.py``).

At the boundary (the next trading day's start, by the OMS clock; with a multi-day virtual clock that
is the jump into the next window, since its sleeps end there) :meth:`DayRollover.maybe_roll`:

- sets ``state.trading_day`` and journals a new ``risk_daily_portfolio`` row (start equity from the
  account, realized P&L 0, not halted), so day-2 daily P&L starts at 0;
- clears the day-loss latch, the entry locks, the per-strategy intent rate windows and yesterday's
  ``risk_daily_strategy`` rows;
- prunes the idempotency cache of intents received before the new day. Rule: **idempotency keys are per
  trading day.** A derived key contains the date; an explicit key de-duplicates within the trading day
  it was first used, and the same key on a later day is a new intent, decided anew (exactly what a
  restart on the new day does, which loads only that day's intents);
- prunes terminal orders created before the new day (with their broker-id and risk-payload entries)
  and last prices of symbols the OMS neither holds nor works;
- calls the ``on_new_day`` hooks (market-data caches, the intent service's own per-day maps, metrics).

Positions, allocations (with their ``entry_ts``), working orders, frozen symbols, strategy state and the
execution ids already applied (they de-duplicate the broker's fill list, which may span days) persist.
Framework-free; safe to call from the supervised loop and on the first event of a new day alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from functools import lru_cache
from zoneinfo import ZoneInfo

from broker_core.calendars import KRX, is_trading_day, next_trading_day, previous_trading_day, timezone
from broker_core.clock import Clock
from oms.core.arbitration import EntryLocks
from oms.core.risk import DailyLossLatch
from oms.core.state import OmsState, Recorder
from oms.core.types import RiskDailyPortfolioRecord

log = logging.getLogger("oms.rollover")


def exchange_tz(code: str = KRX) -> ZoneInfo:
    return timezone(code)


def day_start(day: date, code: str = KRX) -> datetime:
    """00:00 of ``day`` in the exchange's timezone: where that trading day begins."""
    return datetime.combine(day, dtime(0, 0), exchange_tz(code))


def session_day(now: datetime, code: str = KRX) -> date:
    """The trading day in force at ``now``: today from its 00:00 when today trades, else the last
    trading day before it (a Saturday belongs to Friday)."""
    return _session_day_of(now.astimezone(exchange_tz(code)).date(), code)


@lru_cache(maxsize=256)
def _session_day_of(local_day: date, code: str) -> date:
    """``session_day`` of a local date, kept: every intent asks (``DayRollover.due``), the calendar lookup
    costs tens of microseconds and its answer for a date never changes."""
    return local_day if is_trading_day(local_day, code) else previous_trading_day(local_day, code)


def next_day_start(now: datetime, code: str = KRX) -> datetime:
    """The next rollover instant after ``now``: 00:00 of the next trading day."""
    return day_start(next_trading_day(session_day(now, code), code), code)


@dataclass(frozen=True)
class RolloverReport:
    previous: date | None
    day: date
    start_equity: float
    pruned: dict[str, int] = field(default_factory=dict)


def reset_day(
    state: OmsState, latch: DailyLossLatch, day: date, now: datetime, start_equity: float, code: str = KRX
) -> tuple[RiskDailyPortfolioRecord, dict[str, int]]:
    """Move ``state`` to trading day ``day`` in place; returns the new day's portfolio row (to journal) and
    how many entries of each per-day map were dropped."""
    begin = day_start(day, code)
    pruned: dict[str, int] = {}
    state.trading_day = day
    daily = RiskDailyPortfolioRecord(
        trading_day=str(day), start_equity=start_equity, min_equity=start_equity, updated_at=now
    )
    state.daily_portfolio = daily
    pruned["daily_strategy"] = len(state.daily_strategy)
    state.daily_strategy.clear()
    latch.restore(day, None)
    pruned["entry_locks"] = len(state.entry_locks)
    state.entry_locks = EntryLocks()
    pruned["rate_windows"] = len(state.intent_times)
    state.intent_times.clear()
    stale_keys = [k for k, rec in state.intents_by_key.items() if rec.intent.received_at < begin]
    for key in stale_keys:
        del state.intents_by_key[key]
    pruned["intents"] = len(stale_keys)
    old_orders = [o for o in state.orders.values() if o.state.is_terminal and o.created_at < begin]
    for order in old_orders:
        del state.orders[order.order_id]
        state.order_meta.pop(order.order_id, None)
        if order.broker_order_id and state.broker_ids.get(order.broker_order_id) == order.order_id:
            del state.broker_ids[order.broker_order_id]
    pruned["orders"] = len(old_orders)
    live = {s for s, p in state.ledger.positions().items() if p.real_qty} | {o.symbol for o in state.working.values()}
    stale_prices = [s for s in state.last_prices if s not in live]
    for symbol in stale_prices:
        del state.last_prices[symbol]
    pruned["last_prices"] = len(stale_prices)
    return daily, pruned


class DayRollover:
    """Watches the OMS clock and rolls the state over at each trading day's start (see the module doc)."""

    def __init__(
        self,
        state: OmsState,
        recorder: Recorder,
        clock: Clock,
        latch: DailyLossLatch,
        *,
        fallback_equity: Callable[[], float] = lambda: 0.0,
        on_new_day: Sequence[Callable[[date, datetime], object]] = (),
        calendar_code: str = KRX,
    ) -> None:
        self.state = state
        self.recorder = recorder
        self.clock = clock
        self.latch = latch
        self.fallback_equity = fallback_equity
        """Start equity when no broker account is known yet (the OMS's own marked equity)."""
        self.on_new_day = list(on_new_day)
        self.calendar_code = calendar_code
        self.rollovers = 0
        self.last: RolloverReport | None = None

    def due(self, now: datetime | None = None) -> date | None:
        """The new trading day when the state is still on an earlier one, else None."""
        day = session_day(now or self.clock.now(), self.calendar_code)
        current = self.state.trading_day
        return day if current is None or day > current else None

    def maybe_roll(self, now: datetime | None = None) -> RolloverReport | None:
        """Roll over when a new trading day has begun (idempotent; synchronous, so no intent is decided
        half on the old day and half on the new one)."""
        now = now or self.clock.now()
        day = self.due(now)
        if day is None:
            return None
        previous = self.state.trading_day
        account = self.state.account
        equity = account.equity if account is not None else self.fallback_equity()
        daily, pruned = reset_day(self.state, self.latch, day, now, equity, self.calendar_code)
        self.recorder.append([daily])
        for hook in self.on_new_day:
            try:
                hook(day, now)
            except Exception:  # noqa: BLE001 - one cache that fails to prune must not stop the day change
                log.exception("day rollover hook %r failed reason=DAY_ROLLOVER", hook)
        self.rollovers += 1
        self.last = RolloverReport(previous, day, equity, pruned)
        log.info(
            "trading day %s -> %s reason=DAY_ROLLOVER: start equity %.0f; dropped %s",
            previous,
            day,
            equity,
            ", ".join(f"{n} {k}" for k, n in pruned.items() if n) or "nothing",
        )
        return self.last

    async def run(self, beat: Callable[[], None] | None = None, poll_s: float = 60.0) -> None:
        """Roll over at each boundary for the life of the OMS: sleep (on the OMS clock) until the next
        trading day's start, at most ``poll_s`` at a time (liveness beats; a clock set or jumped past the
        boundary is seen at the next wake)."""
        while True:
            self.maybe_roll()
            if beat is not None:
                beat()
            now = self.clock.now()
            await self.clock.sleep_until(min(next_day_start(now, self.calendar_code), now + timedelta(seconds=poll_s)))
