"""Triggers, confirmation and the entry price (strategies.md §3.4, N18–N20). Pure functions on 30m bars.

* N18 trigger on a 30m close: the bar traded in the band (L ≤ band_upper ∧ H ≥ band_lower), C < SMA5
  of the 30m closes (this bar included), V < 0.60 × mean V of the previous 20 bars;
* N19 confirmation on bar +1 or +2: (A) C > avwap_ref, or (B) L > previous bar's L ∧ C ≤
  band_upper·1.003; a close < band_lower·0.998 inside the window disarms (checked first); no
  confirmation by the end of bar +2 disarms too;
* N20 limit = ``min(round_up(avwap_ref), band_upper)`` (band_upper rounded down onto the tick grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from broker_core.market_rules import round_down, round_up
from strategies.nulrimok.bars30 import Bar30
from strategies.nulrimok.config import NulrimokParams
from strategies.sdk.indicators import mean, sma


class Setup(StrEnum):
    IDLE = "IDLE"
    TRIGGERED = "TRIGGERED"
    ORDER_WORKING = "ORDER_WORKING"
    IN_POSITION = "IN_POSITION"


ARMED = frozenset({Setup.TRIGGERED, Setup.ORDER_WORKING})
"""N15 *armed* (IN_BAND is tracked separately as a price condition)."""


@dataclass(frozen=True, slots=True)
class TriggerCheck:
    triggered: bool
    in_band: bool
    sma5: float | None
    vol_mean: float | None
    vol_ratio: float | None
    bonus: bool
    """Trigger-bar V < 40% of the 20-bar mean (N21 size bonus)."""

    def fields(self) -> dict[str, Any]:
        return {
            "in_band": self.in_band,
            "sma5": round(self.sma5, 2) if self.sma5 is not None else None,
            "vol_mean": round(self.vol_mean, 1) if self.vol_mean is not None else None,
            "vol_ratio": round(self.vol_ratio, 4) if self.vol_ratio is not None else None,
            "bonus": self.bonus,
        }


def traded_in_band(bar: Bar30, band_lower: float, band_upper: float) -> bool:
    return bar.low <= band_upper and bar.high >= band_lower


def volume_mean(previous: Sequence[Bar30], n: int) -> float | None:
    """Mean V of the last ``n`` bars of ``previous`` (None with fewer than ``n``)."""
    if len(previous) < n:
        return None
    return mean(b.volume for b in previous[-n:])


def trigger_check(bars: Sequence[Bar30], band_lower: float, band_upper: float, p: NulrimokParams) -> TriggerCheck:
    """N18 on the last bar of ``bars`` (the history before it feeds SMA5 and the volume mean)."""
    bar = bars[-1]
    in_band = traded_in_band(bar, band_lower, band_upper)
    s5 = sma([b.close for b in bars], p.trigger_sma)
    vm = volume_mean(bars[:-1], p.vol_mean_bars)
    ratio = bar.volume / vm if vm else None
    ok = in_band and s5 is not None and bar.close < s5 and ratio is not None and ratio < p.trigger_vol_frac
    bonus = ratio is not None and ratio < p.bonus_vol_frac
    return TriggerCheck(ok, in_band, s5, vm, ratio, bonus)


class Confirm(StrEnum):
    A = "A"
    B = "B"
    DISARM = "DISARM"
    WAIT = "WAIT"
    EXPIRED = "EXPIRED"


def confirm_check(
    bar: Bar30,
    prev: Bar30,
    k: int,
    avwap_ref: float,
    band_lower: float,
    band_upper: float,
    p: NulrimokParams,
) -> Confirm:
    """N19 on bar ``+k`` after the trigger (``prev`` = the bar before it)."""
    if bar.close < band_lower * p.disarm_mult:
        return Confirm.DISARM
    if bar.close > avwap_ref:
        return Confirm.A
    if bar.low > prev.low and bar.close <= band_upper * p.confirm_upper_mult:
        return Confirm.B
    return Confirm.EXPIRED if k >= p.confirm_bars else Confirm.WAIT


def entry_limit(avwap_ref: float, band_upper: float) -> int:
    """N20: ``min(round_up(avwap_ref), band_upper)`` on the tick grid."""
    return min(round_up(avwap_ref), round_down(band_upper))
