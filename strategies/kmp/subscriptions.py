"""K20 / D2: which (symbol, channel) subscriptions KMP wants right now.

* Priority 1 — ``trades`` (ticks + static-VI reference) for the ≤ 20 candidates that are not DONE,
  from the 09:15 scan until 10:00.
* Priority 2 — ``quotes`` for ARMED, ORDER_WORKING, IN_POSITION (and EXITING) symbols and for
  WAIT_ACCEPTANCE symbols whose last price is within 5 ticks of ``trig``, only on slots freed by
  DONE symbols (the whole plan stays within KMP's 20-slot lease); none when the trade channel
  carries reliable bid/ask (``ticks_carry_quotes``).
* Symbols KMP holds (or has a working order in) keep ``trades`` + ``quotes`` at any time, beyond
  the lease if needed (the OMS never evicts a held symbol's slot); from 10:00 they are all KMP keeps.

**[resolved]** one slot per (symbol, channel); quote slots are handed out in the order
IN_POSITION/EXITING/ORDER_WORKING, ARMED, WAIT_ACCEPTANCE near trig, then by symbol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker_core.market_rules import down, up
from strategies.kmp.config import KmpParams
from strategies.kmp.fsm import OPEN_STATES, PRE_ENTRY, State

TRADES = "trades"
QUOTES = "quotes"


@dataclass(frozen=True, slots=True)
class SubView:
    symbol: str
    state: State
    last: float | None
    trig: float | None
    held: bool
    """Position or working order (keeps its slots whatever the time)."""


def _near_trig(v: SubView, ticks: int) -> bool:
    if v.last is None or v.trig is None:
        return False
    return down(v.trig, ticks) <= v.last <= up(v.trig, ticks)


def plan_subscriptions(
    views: Iterable[SubView], window_open: bool, p: KmpParams | None = None
) -> dict[str, frozenset[str]]:
    p = p or KmpParams()
    views = sorted(views, key=lambda v: v.symbol)
    want: dict[str, set[str]] = {}
    held = [v for v in views if v.held or v.state in OPEN_STATES]
    for v in held:
        want.setdefault(v.symbol, set()).add(TRADES)
    if window_open:
        for v in views:
            if v.state in PRE_ENTRY:
                want.setdefault(v.symbol, set()).add(TRADES)
    if not p.ticks_carry_quotes:
        for v in held:
            want[v.symbol].add(QUOTES)
        used = sum(len(c) for c in want.values())
        if window_open:
            armed = [v for v in views if v.state is State.ARMED]
            near = [v for v in views if v.state is State.WAIT_ACCEPTANCE and _near_trig(v, p.quote_near_trig_ticks)]
            for v in armed + near:
                if used >= p.max_slots:
                    break
                want[v.symbol].add(QUOTES)
                used += 1
    return {s: frozenset(c) for s, c in want.items()}
