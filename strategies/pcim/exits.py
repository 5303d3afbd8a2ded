"""Position management (strategies.md I21–I24). Pure.

* I21 initial stop = fill − 1.5·ATR20 (ATR at entry); never moved to breakeven.
* I22 profit take: last ≥ fill + 2.5·ATR20 → sell 60% (local check on the 30 s REST poll).
* I23 trail, after each close once the partial is done: ``trail = max(previous trail,
  C_today − 1.5·ATR20_today)``, first set on the partial's day with the initial stop as floor;
  enforced from the next session (last ≤ trail → exit the rest).
* I24 day 15 (entry day = day 1): exit whatever is left at 15:10.

**[resolved]** the partial quantity is ``floor(0.60·qty)`` (at least 1 share when 2+ are held; a
single share is not split, it trails as the remainder); MFE/MAE are tracked from the polled prices.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from broker_core.contract.reasons import ReasonCode
from strategies.pcim.config import PcimParams


@dataclass(slots=True)
class PositionState:
    symbol: str
    qty: int
    entry_px: float
    entry_day: date
    atr_entry: float
    stop: float
    target: float
    bucket: str = ""
    tier: str = ""
    conviction: str = ""
    influencers: list[str] = field(default_factory=list)
    partial_done: bool = False
    partial_day: date | None = None
    trail: float | None = None
    trail_active_from: date | None = None
    """The first session the trail is enforced (the one after it was set)."""
    max_px: float | None = None
    min_px: float | None = None
    exit_pending: str | None = None
    exit_sent_at: datetime | None = None
    reduce_pending: bool = False
    realized: float = 0.0
    intended_qty: int = 0
    signal_px: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for k in ("entry_day", "partial_day", "trail_active_from"):
            data[k] = str(data[k]) if data[k] else None
        data["exit_sent_at"] = self.exit_sent_at.isoformat() if self.exit_sent_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PositionState:
        data = dict(data)
        for k in ("entry_day", "partial_day", "trail_active_from"):
            data[k] = date.fromisoformat(data[k]) if data.get(k) else None
        data["exit_sent_at"] = datetime.fromisoformat(data["exit_sent_at"]) if data.get("exit_sent_at") else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def effective_stop(self, today: date) -> float:
        if self.trail is not None and self.trail_active_from is not None and today >= self.trail_active_from:
            return max(self.stop, self.trail)
        return self.stop

    def mark(self, price: float) -> None:
        self.max_px = price if self.max_px is None else max(self.max_px, price)
        self.min_px = price if self.min_px is None else min(self.min_px, price)

    def mfe_mae(self) -> tuple[float | None, float | None]:
        if self.max_px is None or self.min_px is None or self.entry_px <= 0:
            return None, None
        return self.max_px / self.entry_px - 1, self.min_px / self.entry_px - 1


def initial_levels(fill: float, atr20: float, params: PcimParams) -> tuple[float, float]:
    """(stop, profit-take level) for a fill."""
    return fill - params.stop_atr_mult * atr20, fill + params.profit_take_atr * atr20


def partial_qty(qty: int, params: PcimParams) -> int:
    if qty < 2:
        return 0
    return max(1, int(math.floor(params.profit_take_frac * qty + 1e-9)))


def check(pos: PositionState, last: float, today: date, params: PcimParams) -> tuple[ReasonCode, int | None] | None:
    """The exit due at ``last`` (code, qty or None for everything) or None."""
    stop = pos.effective_stop(today)
    if last <= stop:
        code = ReasonCode.PCIM_X_TRAIL if stop > pos.stop else ReasonCode.PCIM_X_STOP
        return code, None
    if not pos.partial_done and not pos.reduce_pending and last >= pos.target:
        q = partial_qty(pos.qty, params)
        if q > 0:
            return ReasonCode.PCIM_X_PROFIT_TAKE, q
    return None


def update_trail(
    pos: PositionState, close: float, atr20: float, today: date, next_session: date, params: PcimParams
) -> float | None:
    """I23 after the close of ``today``; returns the new trail (None before the partial)."""
    if not pos.partial_done:
        return None
    candidate = close - params.trail_atr_mult * atr20
    floor = pos.trail if pos.trail is not None else pos.stop
    pos.trail = max(floor, candidate)
    if pos.trail_active_from is None:
        pos.trail_active_from = next_session
    return pos.trail


def holding_day(entry_day: date, today: date, sessions: list[date]) -> int:
    """Trading-day count with the entry day as day 1 (``sessions``: the calendar's days entry..today)."""
    return sum(1 for d in sessions if entry_day <= d <= today)
