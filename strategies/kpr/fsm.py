"""§2.4: the per-symbol state machine and the acceptance-close count (P8).

================  ============================================================  ================
from              condition (on completed bars)                                 to
================  ============================================================  ================
IDLE              setup (P6) and time < 14:30                                   SETUP_DETECTED
SETUP_DETECTED    bar.H ≥ reclaim                                               ACCEPTING (this
                                                                                bar counts if
                                                                                C ≥ reclaim)
SETUP / ACCEPT.   bar.L ≤ stop_level (``invalidation_on: low``; ``close``: C)   INVALIDATED
ACCEPTING         closes ≥ required ∧ entry gates pass → ENTER                  ENTRY_PENDING
ENTRY_PENDING     first fill                                                    IN_POSITION
ENTRY_PENDING     order ends unfilled (or REJECTED) → retry once on a later     ACCEPTING / DONE
                  qualifying bar (P15)
SETUP / ACCEPT.   14:30 reached                                                 IDLE
INVALIDATED       5 min cooldown                                                IDLE
IN_POSITION       exit (position closed)                                        DONE (no re-entry)
================  ============================================================  ================

P8: closes are counted cumulatively (not necessarily consecutive) as bars with C ≥ reclaim.
Required = 2 plus one for each adder that holds at evaluation time: MicroPressure is a proxy (no
true ticks); InvestorSignal STALE/missing; time ≥ 14:00; the symbol's index ≤ −1.0% vs prior close;
the market program regime is outflow (skipped when that feed is unhealthy); ProgramSignal
UNAVAILABLE (only with ``program_unavailable_adder``).

**[resolved]** the bar that locks a setup is not also evaluated for acceptance (the next bar is
the first); invalidation is checked before the 14:30 expiry and before acceptance on each bar;
ENTRY_PENDING is the spec's "ACCEPTING with an order working" made explicit; an entry is decided
only on a *qualifying* bar — one that closes ≥ reclaim — so a retry (P15) or an entry blocked
earlier (timing, sector, …) never buys a bar that lost the reclaim level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum

from strategies.kpr.config import KprParams
from strategies.kpr.setup import Setup
from strategies.kpr.timing import kst

_EPS = 1e-9


class State(StrEnum):
    IDLE = "IDLE"
    SETUP_DETECTED = "SETUP_DETECTED"
    ACCEPTING = "ACCEPTING"
    ENTRY_PENDING = "ENTRY_PENDING"
    IN_POSITION = "IN_POSITION"
    INVALIDATED = "INVALIDATED"
    DONE = "DONE"


ARMED = frozenset({State.SETUP_DETECTED, State.ACCEPTING})
PROTECTED = frozenset({State.SETUP_DETECTED, State.ACCEPTING, State.ENTRY_PENDING, State.IN_POSITION})
"""States that keep a symbol HOT and are never evicted (P1, P4)."""


class Event(StrEnum):
    ACCEPTING = "ACCEPTING"
    CLOSE = "CLOSE"
    INVALIDATED = "INVALIDATED"
    EXPIRED = "EXPIRED"


def invalidated(setup: Setup, low: float, close: float, mode: str) -> bool:
    """``bar.L ≤ stop_level`` (mode ``low``) or ``C ≤ stop_level`` (mode ``close``)."""
    ref = low if mode == "low" else close
    return ref <= setup.stop_level + _EPS


def counts_close(setup: Setup, close: float) -> bool:
    return close >= setup.reclaim - _EPS


@dataclass(slots=True)
class Acceptance:
    """A locked setup on its way to an entry."""

    setup: Setup
    state: State = State.SETUP_DETECTED
    closes: int = 0
    tries: int = 0
    """ENTER intents that ended without a position (missed fill, rejected)."""

    def on_bar(self, high: float, low: float, close: float, bar_end: datetime, p: KprParams) -> list[Event]:
        """One completed bar in SETUP_DETECTED / ACCEPTING."""
        if invalidated(self.setup, low, close, p.invalidation_on):
            self.state = State.INVALIDATED
            return [Event.INVALIDATED]
        if kst(bar_end).time() >= p.setup_cutoff:
            self.state = State.IDLE
            return [Event.EXPIRED]
        events: list[Event] = []
        if self.state is State.SETUP_DETECTED and high >= self.setup.reclaim - _EPS:
            self.state = State.ACCEPTING
            events.append(Event.ACCEPTING)
        if self.state is State.ACCEPTING and counts_close(self.setup, close):
            self.closes += 1
            events.append(Event.CLOSE)
        return events


def acceptance_adders(
    *,
    micro_is_proxy: bool,
    investor_stale: bool,
    t: time,
    index_change: float | None,
    program_outflow: bool | None,
    program_unavailable: bool,
    p: KprParams,
) -> list[str]:
    """The P8 adders that hold now (``program_outflow`` None = market program feed unhealthy: skipped)."""
    out = []
    if micro_is_proxy:
        out.append("micro_proxy")
    if investor_stale:
        out.append("investor_stale")
    if t >= p.late_window_start:
        out.append("late_window")
    if index_change is not None and index_change <= p.index_unfavourable_pct + _EPS:
        out.append("index_unfavourable")
    if program_outflow:
        out.append("program_outflow")
    if program_unavailable and p.program_unavailable_adder:
        out.append("program_unavailable")
    return out


def required_closes(adders: list[str], p: KprParams) -> int:
    return p.base_closes + len(adders)
