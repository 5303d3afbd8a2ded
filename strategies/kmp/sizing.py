"""K13–K15: entry order prices, QualityScore (0–100), stops and position size.

**[resolved]** choices:

* "the liquidity cap does not bind" (the +5 spread/liquidity point) is judged on ``qty_base``
  (before the quality multiplier, which itself depends on the score): it binds when
  ``qty_base·limit`` exceeds 5% of the last-5-minute traded value.
* The last 5 completed 1m bars are the 5 clock minutes before the current one (missing = 0).
* Tick imbalance undefined (< 60 s of ticks) scores 0.
* ATR1m(14) not yet defined → no hard stop: ``initial_stop = structure_stop``.
* ``R`` after the fill is at least one tick (a zero-ATR stop at the fill price would divide by 0).
* Confidence label for the risk payload: GREEN ≥ 80, YELLOW ≥ 60, else RED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker_core.market_rules import down, round_up, tick_size, up
from strategies.kmp.config import KmpParams
from strategies.sdk.indicators import clip01

_EPS = 1e-9


# --------------------------------------------------------------------------- K13 order prices


def trigger_price(or_high: float) -> int:
    """``trig = up(OR_high, 1)``."""
    return up(or_high, 1)


def support_level(vwap: float | None, or_high: float, factor: float = 0.998) -> float:
    """``support = 0.998 · min(VWAP_now, OR_high)`` (OR_high alone when VWAP is unknown)."""
    base = or_high if vwap is None else min(vwap, or_high)
    return factor * base


def entry_limit(trig: float, spread: float, p: KmpParams | None = None) -> int:
    """``limit = round_up(trig + max(3·tick(trig), 2·spread))`` (spread in ₩)."""
    p = p or KmpParams()
    cushion = max(p.cushion_ticks * tick_size(trig), p.cushion_spread_mult * spread)
    return round_up(trig + cushion)


# --------------------------------------------------------------------------- K14 stops


@dataclass(frozen=True, slots=True)
class Stops:
    structure_stop: int
    hard_stop: float | None
    initial_stop: float


def entry_stops(retest_low: float, ref_price: float, atr1m: float | None, p: KmpParams | None = None) -> Stops:
    """``structure = down(retest_low, 2)``; ``hard = ref − 1.2·ATR1m``; initial = the higher.

    ``ref_price`` is the limit at submission and the average fill price after the fill (K14).
    """
    p = p or KmpParams()
    structure = down(retest_low, p.structure_stop_ticks)
    hard = None if atr1m is None else ref_price - p.hard_stop_atr_mult * atr1m
    initial = float(structure) if hard is None else max(float(structure), hard)
    return Stops(structure, hard, initial)


def risk_per_share(fill: float, initial_stop: float) -> float:
    return max(fill - initial_stop, float(tick_size(fill)))


# --------------------------------------------------------------------------- §1.7 QualityScore


@dataclass(frozen=True, slots=True)
class QualityInputs:
    surge: float
    rvol: float
    imbalance: float | None
    retest_low: float
    support: float
    or_high: float
    regime_ok: bool
    spread_pct: float
    liquidity_binds: bool
    same_sector_active: int
    """Other KMP symbols of this sector in WAIT_ACCEPTANCE / ARMED / ORDER_WORKING."""


def quality_components(q: QualityInputs, p: KmpParams | None = None) -> dict[str, float]:
    p = p or KmpParams()
    span = q.or_high - q.support
    clean = clip01((q.retest_low - q.support) / span) if span > 0 else 0.0
    imb = q.imbalance if q.imbalance is not None else 0.0
    return {
        "surge": 20.0 * clip01((q.surge - 3.0) / 5.0),
        "rvol": 20.0 * clip01((q.rvol - 2.0) / 3.0),
        "imbalance": 15.0 * clip01(imb / 0.5),
        "acceptance": 20.0 * clip01(clean),
        "regime": 15.0 if q.regime_ok else 0.0,
        "spread": 5.0 * clip01((p.spread_max_pct - q.spread_pct) / 0.003),
        "liquidity": 0.0 if q.liquidity_binds else 5.0,
        "sector": (
            max(p.sector_saturation_min, -p.sector_saturation_penalty * q.same_sector_active)
            if q.same_sector_active > 0
            else 0.0
        ),
    }


def quality_score(q: QualityInputs, p: KmpParams | None = None) -> float:
    return min(100.0, max(0.0, sum(quality_components(q, p).values())))


def quality_multiplier(score: float, p: KmpParams | None = None) -> float:
    """<40 → 0 (skip) · [40,60) 0.5 · [60,80) 1.0 · [80,100] 1.5."""
    p = p or KmpParams()
    if score < p.quality_min - _EPS:
        return 0.0
    if score < p.quality_band_mid - _EPS:
        return p.quality_mult_low
    if score < p.quality_band_high - _EPS:
        return p.quality_mult_mid
    return p.quality_mult_high


def confidence_label(score: float, p: KmpParams | None = None) -> str:
    p = p or KmpParams()
    if score >= p.quality_band_high - _EPS:
        return "GREEN"
    if score >= p.quality_band_mid - _EPS:
        return "YELLOW"
    return "RED"


# --------------------------------------------------------------------------- K15 size


def qty_base(nav: float, limit: float, initial_stop: float, p: KmpParams | None = None) -> float:
    """``0.005·NAV / (limit − initial_stop)`` (0 when the stop is not below the limit)."""
    p = p or KmpParams()
    risk = limit - initial_stop
    if risk <= 0 or nav <= 0:
        return 0.0
    return p.base_risk_pct * nav / risk


def liquidity_cap_qty(value_last5: float, limit: float, p: KmpParams | None = None) -> int:
    p = p or KmpParams()
    return max(0, math.floor(p.liquidity_cap_pct * value_last5 / limit + _EPS))


def nav_cap_qty(nav: float, limit: float, p: KmpParams | None = None) -> int:
    p = p or KmpParams()
    return max(0, math.floor(p.nav_cap_pct * nav / limit + _EPS))


def liquidity_binds(base: float, limit: float, value_last5: float, p: KmpParams | None = None) -> bool:
    p = p or KmpParams()
    return math.floor(base + _EPS) * limit > p.liquidity_cap_pct * value_last5 + _EPS


@dataclass(frozen=True, slots=True)
class SizeResult:
    qty_base: float
    qty_after_mult: int
    liquidity_cap: int
    nav_cap: int
    qty: int
    capped_by: str | None

    def fields(self) -> dict:
        return {
            "qty_base": self.qty_base,
            "qty_after_mult": self.qty_after_mult,
            "liquidity_cap": self.liquidity_cap,
            "nav_cap": self.nav_cap,
            "qty": self.qty,
            "capped_by": self.capped_by,
        }


def position_size(
    nav: float,
    limit: float,
    initial_stop: float,
    quality_mult: float,
    time_mult: float,
    program_mult: float,
    value_last5: float,
    p: KmpParams | None = None,
) -> SizeResult:
    """K15: ``floor(qty_base·quality·time·program)`` then the liquidity and NAV caps."""
    p = p or KmpParams()
    base = qty_base(nav, limit, initial_stop, p)
    after = max(0, math.floor(base * quality_mult * time_mult * program_mult + _EPS))
    liq = liquidity_cap_qty(value_last5, limit, p)
    navc = nav_cap_qty(nav, limit, p)
    qty, by = after, None
    if liq < qty:
        qty, by = liq, "liquidity"
    if navc < qty:
        qty, by = navc, "nav"
    return SizeResult(base, after, liq, navc, qty, by)
