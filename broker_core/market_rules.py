"""KRX market rules: tick sizes (table effective 2023-01-25), ±30% daily limits, session phases.

Tick table for KOSPI/KOSDAQ common shares (price in KRW → tick):
<2,000: 1 · 2,000–4,999: 5 · 5,000–19,999: 10 · 20,000–49,999: 50 · 50,000–199,999: 100 ·
200,000–499,999: 500 · ≥500,000: 1,000.

Arithmetic is done in integers so band edges are exact.
"""

from __future__ import annotations

import math
from datetime import datetime, time
from enum import StrEnum
from functools import lru_cache

from broker_core.clock import KST

TICK_BANDS: tuple[tuple[int, int], ...] = (
    (2_000, 1),
    (5_000, 5),
    (20_000, 10),
    (50_000, 50),
    (200_000, 100),
    (500_000, 500),
)
TOP_TICK = 1_000
DAILY_LIMIT_PCT = 0.30
_EPS = 1e-9


def tick_size(price: float) -> int:
    """Tick of the band containing ``price``."""
    for upper, tick in TICK_BANDS:
        if price < upper:
            return tick
    return TOP_TICK


def _tick_below(price: float) -> int:
    """Tick of the band just below ``price`` (used when stepping down from a band edge)."""
    return tick_size(price - _EPS) if price > 0 else 1


def is_on_tick(price: float) -> bool:
    if price <= 0 or abs(price - round(price)) > _EPS:
        return False
    return int(round(price)) % tick_size(price) == 0


def round_down(price: float) -> int:
    """Largest grid price ≤ price."""
    p = math.floor(price + _EPS)
    tick = tick_size(p)
    return p - p % tick


def round_up(price: float) -> int:
    """Smallest grid price ≥ price."""
    p = math.ceil(price - _EPS)
    tick = tick_size(p)
    rem = p % tick
    return p if rem == 0 else p + (tick - rem)


def round_to_tick(price: float) -> int:
    lo, hi = round_down(price), round_up(price)
    return lo if price - lo <= hi - price else hi


@lru_cache(maxsize=65_536)
def up(price: float, n: int = 1) -> int:
    """Step ``n`` ticks up from a grid price, re-reading the tick each step (memoized: strategies ask the
    same few prices every second)."""
    p = round_up(price)
    for _ in range(n):
        p += tick_size(p)
    return p


@lru_cache(maxsize=65_536)
def down(price: float, n: int = 1) -> int:
    """Step ``n`` ticks down, using the tick of the band just below the current price (memoized)."""
    p = round_down(price)
    for _ in range(n):
        p -= _tick_below(p)
    return max(p, 1)


def price_limits(base_price: float) -> tuple[int, int]:
    """(lower, upper) daily limit: base ±30%, rounded inward onto the tick grid."""
    return round_up(base_price * (1 - DAILY_LIMIT_PCT)), round_down(base_price * (1 + DAILY_LIMIT_PCT))


def marketable_limit(ref_price: float, buy: bool, band_pct: float | None = None, ticks: int = 3) -> int:
    """Buy: round_up(ref·(1+b)); sell: round_down(ref·(1−b)); b = max(``ticks`` ticks, band_pct)."""
    pct = band_pct if band_pct is not None else 0.003
    if buy:
        return max(round_up(ref_price * (1 + pct)), up(ref_price, ticks))
    return min(round_down(ref_price * (1 - pct)), down(ref_price, ticks))


class SessionPhase(StrEnum):
    CLOSED = "CLOSED"
    PRE_OPEN_AUCTION = "PRE_OPEN_AUCTION"
    CONTINUOUS = "CONTINUOUS"
    CLOSING_AUCTION = "CLOSING_AUCTION"
    POST_CLOSE = "POST_CLOSE"


PRE_OPEN = time(8, 30)
OPEN = time(9, 0)
CLOSING_AUCTION_START = time(15, 20)
CLOSE = time(15, 30)
POST_CLOSE_END = time(18, 0)


def session_phase(now: datetime, is_trading_day: bool = True) -> SessionPhase:
    """Phase of the regular KRX day at ``now`` (any timezone; evaluated in KST)."""
    if not is_trading_day:
        return SessionPhase.CLOSED
    t = now.astimezone(KST).time()
    if PRE_OPEN <= t < OPEN:
        return SessionPhase.PRE_OPEN_AUCTION
    if OPEN <= t < CLOSING_AUCTION_START:
        return SessionPhase.CONTINUOUS
    if CLOSING_AUCTION_START <= t < CLOSE:
        return SessionPhase.CLOSING_AUCTION
    if CLOSE <= t < POST_CLOSE_END:
        return SessionPhase.POST_CLOSE
    return SessionPhase.CLOSED
