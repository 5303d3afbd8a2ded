"""Market regime at 08:30 (strategies.md I12) and the KOSPI −1.5% entry veto (I14). Pure.

``x = (KOSPI[T−1] − SMA50) / ATR50`` over KOSPI daily bars ending at T−1:
Crisis x < −2 (cap 20%, Bucket B only) · Weak −2 ≤ x < 0 (cap 50%, Bucket A disabled unless
configured otherwise) · Normal 0 ≤ x ≤ 2 (80%) · Strong x > 2 (100%). The cap bounds PCIM's gross
exposure (positions + working buys) / NAV; it never scales a trade's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from strategies.pcim.config import PcimParams
from strategies.sdk.bars import Bar
from strategies.sdk.indicators import atr, pct, sma


class Regime(StrEnum):
    CRISIS = "CRISIS"
    WEAK = "WEAK"
    NORMAL = "NORMAL"
    STRONG = "STRONG"


@dataclass(frozen=True, slots=True)
class RegimeState:
    regime: Regime
    x: float | None
    cap: float
    bucket_a: bool
    """Bucket A allowed (Normal/Strong; Weak too when ``weak_disables_a`` is off)."""
    bucket_b: bool
    source: str
    kospi: float | None = None
    sma50: float | None = None
    atr50: float | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "regime": self.regime.value,
            "x": None if self.x is None else round(self.x, 4),
            "cap": self.cap,
            "bucket_a": self.bucket_a,
            "bucket_b": self.bucket_b,
            "kospi": self.kospi,
            "sma50": None if self.sma50 is None else round(self.sma50, 2),
            "atr50": None if self.atr50 is None else round(self.atr50, 2),
            "source": self.source,
        }


def classify(x: float) -> Regime:
    if x < -2:
        return Regime.CRISIS
    if x < 0:
        return Regime.WEAK
    if x <= 2:
        return Regime.NORMAL
    return Regime.STRONG


def state_of(
    regime: Regime, params: PcimParams, *, x: float | None = None, source: str = "index", **levels: Any
) -> RegimeState:
    bucket_a = regime in (Regime.NORMAL, Regime.STRONG) or (regime is Regime.WEAK and not params.weak_disables_a)
    return RegimeState(
        regime=regime,
        x=x,
        cap=params.regime_cap(regime.value),
        bucket_a=bucket_a,
        bucket_b=True,
        source=source,
        **levels,
    )


def from_levels(kospi: float, sma50: float, atr50: float, params: PcimParams) -> RegimeState:
    """Scenario form: the three levels given."""
    x = (kospi - sma50) / atr50
    return state_of(classify(x), params, x=x, kospi=kospi, sma50=sma50, atr50=atr50)


def from_daily(bars: Sequence[Bar], params: PcimParams) -> RegimeState | None:
    """From KOSPI daily bars ending at T−1 (oldest first); None when too short."""
    bars = sorted(bars, key=lambda b: b.start)
    if len(bars) < max(params.regime_sma, params.regime_atr):
        return None
    closes = [b.close for b in bars]
    sma50 = sma(closes, params.regime_sma)
    atr50 = atr(bars, params.regime_atr)
    if sma50 is None or atr50 is None or atr50 <= 0:
        return None
    return from_levels(closes[-1], sma50, atr50, params)


def fallback(params: PcimParams) -> RegimeState:
    return state_of(Regime(params.regime_fallback), params, source="fallback")


def kospi_veto(last: float, prior_close: float, params: PcimParams) -> tuple[bool, float]:
    """I14: (veto, change) — KOSPI at or below ``kospi_veto_pct`` vs its prior close."""
    change = pct(last, prior_close)
    return change <= params.kospi_veto_pct + 1e-12, change
