"""K3, K8–K10: gap skip at the open, the 09:15 scanner and the opening-range filter.

**[resolved]** choices:

* The opening range is the 1m bars starting in [09:00, 09:15) (09:00–09:14, K8).
* The official open for K3 is the open the caller passes at 09:00; when it passes none, the scan
  uses the open of the 09:00 bar (no 09:00 bar → no gap check).
* Ranking ties (equal surge) break by symbol code, so the candidate list is deterministic.
* A symbol without a positive ``value_base`` has no surge and is never a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

from broker_core.market_rules import up
from strategies.kmp.minutes import bar_start, bar_value, field_of
from strategies.kmp.timing import minute_of_time

_EPS = 1e-12


def gap_pct(open_price: float, prior_close: float) -> float:
    return open_price / prior_close - 1.0


def is_gap_skip(open_price: float | None, prior_close: float | None, threshold: float = 0.05) -> bool:
    """K3: ``pct(open, prior_close) ≥ 5%``."""
    if open_price is None or prior_close is None or prior_close <= 0:
        return False
    return gap_pct(open_price, prior_close) >= threshold - _EPS


@dataclass(frozen=True, slots=True)
class OpeningRange:
    value15: float
    or_high: float
    or_low: float
    open_price: float | None
    """Open of the 09:00 bar (None without one)."""
    bars: int

    @property
    def or_pct(self) -> float:
        return or_pct(self.or_high, self.or_low)

    @property
    def trig(self) -> int:
        """``up(OR_high, 1)`` (§1.5)."""
        return up(self.or_high, 1)


def opening_range(bars: Iterable[Any], start: time = time(9, 0), end: time = time(9, 15)) -> OpeningRange | None:
    """K8 over the bars starting in [start, end); None when there is none."""
    lo, hi = minute_of_time(start), minute_of_time(end)
    value = 0.0
    high = low = None
    open_price = None
    n = 0
    for b in sorted(bars, key=bar_start):
        s = bar_start(b)
        m = s.hour * 60 + s.minute
        if not lo <= m < hi:
            continue
        n += 1
        value += bar_value(b)
        bar_high, bar_low = float(field_of(b, "high")), float(field_of(b, "low"))
        high = bar_high if high is None else max(high, bar_high)
        low = bar_low if low is None else min(low, bar_low)
        if m == lo:
            open_price = float(field_of(b, "open"))
    if n == 0 or high is None or low is None:
        return None
    return OpeningRange(value, high, low, open_price, n)


def surge(value15: float, value_base: float | None) -> float | None:
    """K8: ``value15 / value_base``."""
    if value_base is None or value_base <= 0:
        return None
    return value15 / value_base


def or_pct(or_high: float, or_low: float) -> float:
    """K10: ``(OR_high − OR_low) / ((OR_high + OR_low)/2)``."""
    return (or_high - or_low) / ((or_high + or_low) / 2.0)


def or_range_ok(or_high: float, or_low: float, lo: float = 0.012, hi: float = 0.055) -> bool:
    x = or_pct(or_high, or_low)
    return lo - _EPS <= x <= hi + _EPS


@dataclass(frozen=True, slots=True)
class ScanRow:
    symbol: str
    surge: float | None
    trend_ok: bool


def rank_candidates(rows: Sequence[ScanRow], surge_min: float = 3.0, top_n: int = 20) -> list[ScanRow]:
    """K9: keep ``trend_ok ∧ surge ≥ 3``, rank by surge descending, take the top 20."""
    keep = [r for r in rows if r.trend_ok and r.surge is not None and r.surge >= surge_min - _EPS]
    keep.sort(key=lambda r: (-(r.surge or 0.0), r.symbol))
    return keep[:top_n]
