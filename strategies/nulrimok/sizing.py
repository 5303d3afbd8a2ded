"""Sizing and portfolio limits (strategies.md §3.5, N21–N22). Pure arithmetic.

``risk₩ = base_R · bucket_mult · risk_mult · bonus`` (base_R = 0.5% NAV, bonus 1.10 when the trigger
bar's V < 40% of its 20-bar mean); ``stop = max(structural swing low, avwap_ref − 1.2·ATR30m)``;
``qty = floor(risk₩ / (limit − stop))``. Open risk ``Σ qty·max(0, avg − stop)`` stays within
``risk_mult × 3% NAV``, and a sector's within 35% of that; a trade that would breach either is shrunk
to the room left, or skipped when that room is under 30% of its normal size.

**[resolved]**: the swing low counts only when it lies below the limit (a low at or above the entry is
no support under it); the portfolio cap is applied like the sector cap (shrink / skip); working entry
orders count with their planned risk; the quantity is also capped at the OMS per-position limit
(15% NAV) so the OMS need not cut it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker_core.contract.reasons import ReasonCode


def initial_stop(
    swing_low: float | None, avwap_ref: float, atr30m: float | None, limit: float, atr_mult: float
) -> float:
    """N21 stop for a buy at ``limit``."""
    atr_stop = avwap_ref - atr_mult * atr30m if atr30m else None
    structural = swing_low if swing_low is not None and swing_low < limit else None
    candidates = [x for x in (structural, atr_stop) if x is not None and x < limit]
    if not candidates:
        return limit * 0.97
    return max(candidates)


def risk_budget_won(nav: float, base_pct: float, bucket_mult: float, risk_mult: float, bonus: float) -> float:
    return nav * base_pct * bucket_mult * risk_mult * bonus


@dataclass(frozen=True, slots=True)
class CapResult:
    risk: float
    """Risk ₩ allowed for the new trade (0 = skip)."""
    code: ReasonCode | None
    """None (full size), NULRIMOK_SIZE_CUT (shrunk) or the gate that skipped it."""
    room_total: float
    room_sector: float


def apply_caps(
    want: float,
    open_total: float,
    open_sector: float,
    nav: float,
    risk_mult: float,
    budget_pct: float,
    sector_frac: float,
    min_frac: float,
) -> CapResult:
    """N22: shrink ``want`` (risk ₩) to the portfolio and sector room; skip under ``min_frac`` of it."""
    budget = risk_mult * budget_pct * nav
    room_total = max(0.0, budget - open_total)
    room_sector = max(0.0, sector_frac * budget - open_sector)
    room = min(room_total, room_sector)
    if want <= room:
        return CapResult(want, None, room_total, room_sector)
    if want <= 0 or room < min_frac * want:
        code = ReasonCode.NULRIMOK_G_SECTOR_RISK if room_sector < room_total else ReasonCode.NULRIMOK_G_PORTFOLIO_RISK
        return CapResult(0.0, code, room_total, room_sector)
    return CapResult(room, ReasonCode.NULRIMOK_SIZE_CUT, room_total, room_sector)


def quantity(risk_won: float, limit: float, stop: float, nav: float, max_position_pct: float) -> int:
    per_share = limit - stop
    if per_share <= 0 or risk_won <= 0 or limit <= 0:
        return 0
    qty = math.floor(risk_won / per_share + 1e-9)
    return max(0, min(qty, math.floor(nav * max_position_pct / limit)))


def position_risk(qty: int, avg: float, stop: float | None) -> float:
    """Open risk of one holding: ``qty · max(0, avg − stop)`` (no stop known: counted 0)."""
    if stop is None:
        return 0.0
    return qty * max(0.0, avg - stop)
