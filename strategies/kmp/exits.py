"""K16–K19: exit rules of an open KMP position, as pure functions.

Price-update rules (every trade): hard stop, adaptive trail. 1m-close rules (each completed bar):
early fail, stall scratch. Strategy-wide rules (risk_off / day loss ≤ −3% / 14:30) live in the
engine because they FLATTEN every position.

**[resolved]** choices:

* Held time at a 1m close is measured from the first fill to the bar's *end* (start + 60 s); the
  early-fail rule applies to bars ending within the first 15 min held, the stall rule from 8 min.
* The trail's ``t`` is minutes held (fractional) at the price update.
* ``max_fav`` is the highest trade price since the first fill (the fill price at least).
* Exit price: marketable limit sell ``round_down(ref·(1−b))`` with ``b = max(3 ticks, 0.3%)`` and
  ref = best bid, else last (C6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from broker_core.market_rules import marketable_limit
from strategies.kmp.config import KmpParams

_EPS = 1e-9


def stop_hit(last: float, initial_stop: float) -> bool:
    """K16 hard stop: ``last ≤ initial_stop``."""
    return last <= initial_stop + _EPS


def early_fail(
    bar_close: float, or_high: float | None, vwap: float | None, held_min: float, p: KmpParams | None = None
) -> bool:
    """K16: within the first 15 min held, a 1m close below both OR_high and VWAP."""
    p = p or KmpParams()
    if or_high is None or vwap is None or held_min > p.early_fail_min + _EPS:
        return False
    return bar_close < or_high and bar_close < vwap


def r_multiple(price: float, fill: float, r: float) -> float:
    return (price - fill) / r


def stall_exit(bar_close: float, fill: float, r: float, held_min: float, p: KmpParams | None = None) -> bool:
    """K17: from 8 min held, at a 1m close, ``(C − fill)/R < 0.5``."""
    p = p or KmpParams()
    if held_min < p.stall_min - _EPS or r <= 0:
        return False
    return r_multiple(bar_close, fill, r) < p.stall_r - _EPS


def trail_factor(t_min: float, defensive: bool, p: KmpParams | None = None) -> float:
    """K18: ``f = 0.5`` (t ≤ 15) else ``0.5 + min(0.25, 0.0167·(t − 15))``; defensive → ≥ 0.7."""
    p = p or KmpParams()
    if t_min <= p.trail_f_start_min:
        f = p.trail_f_base
    else:
        f = p.trail_f_base + min(p.trail_f_max_add, p.trail_f_slope * (t_min - p.trail_f_start_min))
    if defensive:
        f = max(f, p.trail_f_defensive)
    return f


def trail_active(max_fav: float, fill: float, r: float, p: KmpParams | None = None) -> bool:
    p = p or KmpParams()
    return max_fav >= fill + p.trail_activation_r * r - _EPS


def trail_price(
    fill: float,
    max_fav: float,
    r: float,
    t_min: float,
    structure_stop: float,
    defensive: bool,
    p: KmpParams | None = None,
) -> float | None:
    """K18 trail level (not rounded), or None while the trail is not active."""
    p = p or KmpParams()
    if not trail_active(max_fav, fill, r, p):
        return None
    gain = max_fav - fill
    return max(fill + trail_factor(t_min, defensive, p) * gain, structure_stop)


def trail_hit(last: float, trail: float | None) -> bool:
    return trail is not None and last <= trail + _EPS


def exit_limit_price(
    bid: float | None, last: float | None, p: KmpParams | None = None
) -> tuple[int | None, float | None]:
    """(limit, ref) of a marketable-limit sell (C6/K19); (None, None) without any price."""
    p = p or KmpParams()
    ref = bid if bid is not None and bid > 0 else last
    if ref is None or ref <= 0:
        return None, None
    return marketable_limit(ref, buy=False, band_pct=p.exit_band_pct, ticks=p.exit_band_ticks), ref


@dataclass(slots=True)
class PositionState:
    """An open KMP position (one per symbol per day)."""

    symbol: str
    qty: int
    fill_price: float
    """Average entry fill price."""
    fill_ts: datetime
    """Time of the first fill: held time is measured from here."""
    initial_stop: float
    structure_stop: float
    hard_stop: float | None
    r: float
    max_fav: float
    or_high: float | None
    bought_qty: int = 0
    cost: float = 0.0
    sold_qty: int = 0
    proceeds: float = 0.0
    recovered: bool = False

    def held_minutes(self, now: datetime) -> float:
        return (now - self.fill_ts).total_seconds() / 60.0

    def realized_pnl(self) -> float:
        return self.proceeds - self.sold_qty * self.fill_price
