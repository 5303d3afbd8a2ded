"""§1.5: symbol states and the break → pullback → reclaim acceptance machine.

``trig = up(OR_high, 1)``; ``support = 0.998 · min(VWAP_now, OR_high)``.

=================  ===================================================  =========================
state              leaves when                                          to
=================  ===================================================  =========================
WATCH              last > trig ∧ last > VWAP (break; t_break recorded)  WAIT_ACCEPTANCE
WAIT_ACCEPTANCE    last ≤ trig (pullback; retest_low = min since)       ARMED
ARMED              last > trig ∧ last > VWAP (reclaim) ∧ gates pass     ORDER_WORKING (engine)
WAIT_ACC / ARMED   now − t_break > 5 min                                DONE KMP_ACCEPT_TIMEOUT
ARMED              any price < support                                  DONE KMP_SUPPORT_LOST
=================  ===================================================  =========================

A break counts only inside the entry window (``not_before`` = 09:16): a price above trig and VWAP
earlier (the symbol is WATCH from the 09:15 scan) leaves it WATCH, so the 5-min acceptance clock
never starts before the window.

**[resolved]** choices: the tick that starts the pullback is evaluated as ARMED at once (it may
lose support); ``retest_low`` keeps tracking while ARMED, including after failed gate attempts;
a VWAP not yet defined blocks break and reclaim (support falls back to OR_high); the timeout is
checked before anything else on every price and clock update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from strategies.kmp.sizing import support_level


class State(StrEnum):
    UNIVERSE = "UNIVERSE"
    """In the universe, not (yet) a candidate."""
    CANDIDATE = "CANDIDATE"
    WATCH = "WATCH"
    WAIT_ACCEPTANCE = "WAIT_ACCEPTANCE"
    ARMED = "ARMED"
    ORDER_WORKING = "ORDER_WORKING"
    IN_POSITION = "IN_POSITION"
    EXITING = "EXITING"
    """An exit was sent; the position is closing (DONE for entries)."""
    DONE = "DONE"


PRE_ENTRY = frozenset({State.CANDIDATE, State.WATCH, State.WAIT_ACCEPTANCE, State.ARMED})
ACCEPTING = frozenset({State.WAIT_ACCEPTANCE, State.ARMED})
OPEN_STATES = frozenset({State.ORDER_WORKING, State.IN_POSITION, State.EXITING})
SECTOR_ACTIVE = frozenset({State.WAIT_ACCEPTANCE, State.ARMED, State.ORDER_WORKING})


class Event(StrEnum):
    BREAK = "BREAK"
    PULLBACK = "PULLBACK"
    RECLAIM = "RECLAIM"
    TIMEOUT = "TIMEOUT"
    SUPPORT_LOST = "SUPPORT_LOST"


@dataclass(slots=True)
class Acceptance:
    """The WATCH / WAIT_ACCEPTANCE / ARMED part of one symbol's machine."""

    trig: float
    or_high: float
    timeout_sec: float = 300.0
    support_factor: float = 0.998
    state: State = State.WATCH
    t_break: datetime | None = None
    retest_low: float | None = None
    not_before: datetime | None = None
    """Start of the entry window: a break before it does not count (None: any time)."""

    def support(self, vwap: float | None) -> float:
        return support_level(vwap, self.or_high, self.support_factor)

    def timed_out(self, now: datetime) -> bool:
        return (
            self.state in ACCEPTING
            and self.t_break is not None
            and (now - self.t_break).total_seconds() > self.timeout_sec
        )

    def on_clock(self, now: datetime) -> Event | None:
        return Event.TIMEOUT if self.timed_out(now) else None

    def on_price(self, price: float, vwap: float | None, ts: datetime) -> Event | None:
        """Advance on one price. RECLAIM leaves the state ARMED: the engine decides (gates)."""
        if self.timed_out(ts):
            return Event.TIMEOUT
        above = vwap is not None and price > self.trig and price > vwap
        if self.state is State.WATCH:
            if above and (self.not_before is None or ts >= self.not_before):
                self.state, self.t_break = State.WAIT_ACCEPTANCE, ts
                return Event.BREAK
            return None
        event = None
        if self.state is State.WAIT_ACCEPTANCE:
            if price > self.trig:
                return None
            self.state, self.retest_low = State.ARMED, price
            event = Event.PULLBACK
        if self.state is State.ARMED:
            self.retest_low = price if self.retest_low is None else min(self.retest_low, price)
            if price < self.support(vwap):
                return Event.SUPPORT_LOST
            if above:
                return Event.RECLAIM
        return event
