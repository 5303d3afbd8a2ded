"""Volatility interruption (VI) for the paper exchange, after the KRX rules (specs/kis.md §7).

Simulated:

- **static VI**: a trade at or beyond ±10% of the static reference. The reference starts as the
  day's base price (previous close); the first regular-session trade of the day is the opening
  auction price and becomes the reference (unless it is itself beyond the band, which triggers a
  VI); after a VI, the first trade at or after the halt's end is the VI auction price and becomes
  both the static and the dynamic reference.
- **dynamic VI**: a trade at or beyond ±6% (KOSPI200 members ±3%) of the previous trade during
  the continuous session, ±4% (±2%) during the closing auction 15:20–15:30. Static wins when both fire.
- a trigger halts continuous matching of that symbol for 2 minutes (``HALT``); the triggering trade
  itself is not matched. Orders keep being accepted; they match on the tape again from the first
  trade at or after the halt's end.

Not simulated:

- the single-price call auction itself (approximated by pausing matching; the uncross price is
  whatever the tape prints first after the halt);
- the random extension of up to ~30 s at the end of the auction;
- VI in the after-hours single-price session and the IPO-first-day exemption;
- auctions are judged by their printed price, not by the expected price during order entry: the
  opening auction's VI check is made on the opening print, the closing auction's on its prints.

With replayed minute bars consecutive prints rarely differ by 6%, so dynamic VI mostly fires on
synthetic tapes; this is the specified rule, not a tuned one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from broker_core.market_rules import SessionPhase, session_phase

HALT = timedelta(minutes=2)
STATIC_PCT = 0.10
DYNAMIC_PCT = {False: 0.06, True: 0.03}
"""Continuous session: other shares / KOSPI200 members."""
DYNAMIC_CLOSING_PCT = {False: 0.04, True: 0.02}
_EPS = 1e-9


class ViKind(StrEnum):
    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"


@dataclass(frozen=True, slots=True)
class ViEvent:
    symbol: str
    kind: ViKind
    trigger_price: float
    ref_price: float
    triggered_at: datetime
    resume_at: datetime

    @property
    def direction(self) -> int:
        """+1 for an upward trigger, -1 for a downward one."""
        return 1 if self.trigger_price > self.ref_price else -1


@dataclass(slots=True)
class _SymbolState:
    static_ref: float | None
    last: float | None = None
    opened: bool = False
    halt_until: datetime | None = None


class ViMonitor:
    """Tracks VI references per symbol and decides, trade by trade, whether a VI starts."""

    def __init__(self, kospi200: Collection[str] = (), *, halt: timedelta = HALT) -> None:
        self._kospi200 = frozenset(kospi200)
        self.kospi200 = self._kospi200
        self._halt = halt
        self._states: dict[str, _SymbolState] = {}
        self.events: list[ViEvent] = []
        self._phase_at: datetime | None = None
        self._phase = SessionPhase.CLOSED

    def set_base(self, symbol: str, base_price: float | None) -> None:
        """The day's base price, the static reference before the open."""
        state = self._states.get(symbol)
        if state is None:
            self._states[symbol] = _SymbolState(static_ref=base_price)
        elif not state.opened:
            state.static_ref = base_price

    def on_trade(self, symbol: str, price: float, ts: datetime) -> ViEvent | None:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = _SymbolState(static_ref=None)
        if state.halt_until is not None:
            if ts < state.halt_until:
                return None
            state.halt_until = None
            state.static_ref = state.last = price
            return None
        if ts != self._phase_at:  # an instant's prints (every symbol's) share one phase
            self._phase_at, self._phase = ts, session_phase(ts)
        phase = self._phase
        if phase not in (SessionPhase.CONTINUOUS, SessionPhase.CLOSING_AUCTION):
            state.last = price
            return None
        if not state.opened:
            state.opened = True
            if state.static_ref is None or not _beyond(price, state.static_ref, STATIC_PCT):
                state.static_ref = state.last = price
                return None
            return self._trigger(state, symbol, ViKind.STATIC, price, state.static_ref, ts)
        if state.static_ref is not None and _beyond(price, state.static_ref, STATIC_PCT):
            return self._trigger(state, symbol, ViKind.STATIC, price, state.static_ref, ts)
        band = (DYNAMIC_CLOSING_PCT if phase is SessionPhase.CLOSING_AUCTION else DYNAMIC_PCT)[symbol in self._kospi200]
        if state.last is not None and _beyond(price, state.last, band):
            return self._trigger(state, symbol, ViKind.DYNAMIC, price, state.last, ts)
        state.last = price
        return None

    def is_halted(self, symbol: str, now: datetime) -> bool:
        state = self._states.get(symbol)
        return state is not None and state.halt_until is not None and now < state.halt_until

    def halt_until(self, symbol: str) -> datetime | None:
        state = self._states.get(symbol)
        return state.halt_until if state else None

    def static_ref(self, symbol: str) -> float | None:
        state = self._states.get(symbol)
        return state.static_ref if state else None

    def _trigger(
        self, state: _SymbolState, symbol: str, kind: ViKind, price: float, ref: float, ts: datetime
    ) -> ViEvent:
        state.halt_until = ts + self._halt
        event = ViEvent(symbol, kind, price, ref, ts, state.halt_until)
        self.events.append(event)
        return event


def _beyond(price: float, ref: float, pct: float) -> bool:
    return price >= ref * (1 + pct) - _EPS or price <= ref * (1 - pct) + _EPS
