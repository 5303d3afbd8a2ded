"""K12: the entry gates, in the spec's order, as pure functions.

``check_gates`` stops at the first failing gate and returns its code (the symbol stays ARMED and is
re-tried on the next reclaim tick, K11). Inputs that only a later gate needs are computed lazily by
the caller through :class:`GateInputs` callables, so e.g. a missing quote does not matter when
the time gate already failed.

**[resolved]** choices:

* "KMP positions + working entries" counts ORDER_WORKING, IN_POSITION and EXITING symbols (an
  exit not yet filled still holds the name); the sector rule uses the same set.
* ``rvol``: ``V_last_completed_1m`` is the volume of the clock minute before the current one and
  ``V_current_1m`` the volume so far in the current minute (a minute without a bar is 0, B2).
* ``spread%`` = (ask − bid)/mid; a missing or stale (> 30 s) bid/ask fails ``KMP_G_SPREAD_NA``.
* VI gate: ``limit < down(static_up, 10)`` with ``static_up = round_to_tick(vi_ref·(1+vi_band))``
  (strict, scenario 4), then "no VI in the last 10 min" (``KMP_VI_RECENT``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

from broker_core.market_rules import down, round_to_tick
from strategies.kmp.config import KmpParams
from strategies.kmp.decisions import ReasonCode

_EPS = 1e-9


def min_surge(m: int, p: KmpParams | None = None) -> float:
    """Time decay: ``3.0 + 0.04·m``."""
    p = p or KmpParams()
    return p.surge_min + p.surge_decay_per_min * m


def time_decay_ok(surge: float | None, m: int, p: KmpParams | None = None) -> bool:
    return surge is not None and surge >= min_surge(m, p) - _EPS


def size_time_mult(m: int, p: KmpParams | None = None) -> float:
    """K15: ``max(0.45, 1 − 0.012·m)``."""
    p = p or KmpParams()
    return max(p.size_time_floor, 1.0 - p.size_time_decay * m)


def entry_rvol(v_last_completed: float, v_current: float, vol1m_base: float | None) -> float | None:
    """K12: ``max(V_last_completed_1m, V_current_1m) / vol1m_base``."""
    if vol1m_base is None or vol1m_base <= 0:
        return None
    return max(v_last_completed, v_current) / vol1m_base


def spread_pct(bid: float | None, ask: float | None) -> float | None:
    """(ask − bid)/mid, None without a two-sided quote."""
    if bid is None or ask is None or bid <= 0 or ask <= 0 or ask < bid:
        return None
    mid = (bid + ask) / 2.0
    return (ask - bid) / mid


def static_up(vi_ref: float, vi_band: float) -> int:
    return round_to_tick(vi_ref * (1.0 + vi_band))


def vi_wall(vi_ref: float, vi_band: float = 0.02, ticks: int = 10) -> int:
    """``down(static_up, 10)``: the highest price an entry limit must stay strictly below."""
    return down(static_up(vi_ref, vi_band), ticks)


def vi_wall_ok(limit: float, vi_ref: float, vi_band: float = 0.02, ticks: int = 10) -> bool:
    return limit < vi_wall(vi_ref, vi_band, ticks)


def in_entry_window(t: time, p: KmpParams | None = None) -> bool:
    """09:16:00 ≤ t < 10:00:00."""
    p = p or KmpParams()
    return p.entry_start <= t < p.entry_end


@dataclass(slots=True)
class GateInputs:
    """What the gates look at. Callables are evaluated only when their gate is reached."""

    now: datetime
    time_of_day: time
    open_count: int
    sector_count: int
    day_pnl_pct: float | None
    risk_off: bool
    surge: float | None
    m: int
    rvol: Callable[[], float | None]
    spread_pct: Callable[[], float | None]
    limit: Callable[[], float | None]
    vi_ref: float | None
    last_vi: datetime | None
    nav: float | None
    quality: Callable[[], float]
    qty: Callable[[], int]
    retry_after: datetime | None = None


@dataclass(slots=True)
class GateResult:
    code: ReasonCode | None
    detail: dict

    @property
    def ok(self) -> bool:
        return self.code is None


def check_gates(g: GateInputs, p: KmpParams | None = None) -> GateResult:
    """K12 in order; the first failure wins."""
    p = p or KmpParams()
    d: dict = {}
    if not in_entry_window(g.time_of_day, p):
        return GateResult(ReasonCode.KMP_G_TIME, {"time": g.time_of_day.isoformat()})
    if g.retry_after is not None and g.now < g.retry_after:
        return GateResult(ReasonCode.KMP_G_RETRY_WAIT, {"retry_after": g.retry_after.isoformat()})
    d["open_count"] = g.open_count
    if g.open_count >= p.max_positions:
        return GateResult(ReasonCode.KMP_G_MAX_POS, d)
    d["sector_count"] = g.sector_count
    if g.sector_count >= p.max_per_sector:
        return GateResult(ReasonCode.KMP_G_SECTOR, d)
    d["day_pnl_pct"] = g.day_pnl_pct
    if g.day_pnl_pct is not None and g.day_pnl_pct <= p.day_loss_entry_block_pct + 1e-12:
        return GateResult(ReasonCode.KMP_G_DAY_LOSS, d)
    if g.risk_off:
        return GateResult(ReasonCode.KMP_G_RISK_OFF, d)
    d["surge"], d["m"], d["min_surge"] = g.surge, g.m, min_surge(g.m, p)
    if not time_decay_ok(g.surge, g.m, p):
        return GateResult(ReasonCode.KMP_G_TIME_DECAY, d)
    rv = g.rvol()
    d["rvol"] = rv
    if rv is None or rv < p.rvol_min - _EPS:
        return GateResult(ReasonCode.KMP_G_RVOL, d)
    sp = g.spread_pct()
    d["spread_pct"] = sp
    if sp is None:
        return GateResult(ReasonCode.KMP_G_SPREAD_NA, d)
    if sp > p.spread_max_pct + _EPS:
        return GateResult(ReasonCode.KMP_G_SPREAD, d)
    limit = g.limit()
    d["limit"] = limit
    if g.vi_ref is None or limit is None:
        return GateResult(ReasonCode.KMP_VI_MISSING, d)
    d["vi_ref"], d["static_up"] = g.vi_ref, static_up(g.vi_ref, p.vi_band)
    d["vi_wall"] = vi_wall(g.vi_ref, p.vi_band, p.vi_wall_ticks)
    if not limit < d["vi_wall"]:
        return GateResult(ReasonCode.KMP_VI_WALL, d)
    if g.last_vi is not None and (g.now - g.last_vi).total_seconds() < p.vi_cooldown_sec:
        d["last_vi"] = g.last_vi.isoformat()
        return GateResult(ReasonCode.KMP_VI_RECENT, d)
    if g.nav is None or g.nav <= 0:
        return GateResult(ReasonCode.KMP_G_NAV_NA, d)
    q = g.quality()
    d["quality"] = q
    if q < p.quality_min - _EPS:
        return GateResult(ReasonCode.KMP_G_QUALITY, d)
    qty = g.qty()
    d["qty"] = qty
    if qty < 1:
        return GateResult(ReasonCode.KMP_G_QTY, d)
    return GateResult(None, d)
