"""R1–R3: the shared market regime on SPY, and M4's own regime of the adaptive model on XLK."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from strategies.rotation.config import RegimeParams
from strategies.rotation.history import DayLike, history


class Regime(StrEnum):
    BULL = "bull"
    BEAR = "bear"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class RegimeReading:
    """A regime and the figures it was read from (for the audit log)."""

    regime: Regime
    symbol: str
    closes: int
    close: float | None = None
    ma: float | None = None
    mom: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "regime": self.regime.value,
            "symbol": self.symbol,
            "closes": self.closes,
            "close": self.close,
            "ma": self.ma,
            "mom": self.mom,
        }


def classify(values: np.ndarray, params: RegimeParams, symbol: str = "SPY") -> RegimeReading:
    """R1–R3 on a close series (oldest first, last = the decision day's latest close)."""
    n = len(values)
    if n < params.min_closes:
        return RegimeReading(Regime.NEUTRAL, symbol, n)
    close = float(values[-1])
    ma = float(np.mean(values[-params.ma_window :]))
    mom = close / float(values[-1 - params.mom_window]) - 1.0
    if abs(close / ma - 1.0) < params.band:
        regime = Regime.BULL if mom > 0 else Regime.BEAR
    else:
        regime = Regime.BULL if close > ma else Regime.BEAR
    return RegimeReading(regime, symbol, n, close, ma, mom)


def market_regime(closes: pd.DataFrame, day: DayLike, params: RegimeParams | None = None) -> RegimeReading:
    """R1–R3 on the benchmark (SPY) closes dated on or before ``day``."""
    p = params or RegimeParams()
    return classify(history(closes, p.benchmark, day), p, p.benchmark)


def above_own_mean(closes: pd.DataFrame, symbol: str, day: DayLike, window: int = 200) -> RegimeReading:
    """M4: bull when ``symbol``'s close is above the mean of its last ``window`` closes, else bear.

    With fewer than ``window`` closes there is no mean to be above, so bear."""
    values = history(closes, symbol, day)
    if len(values) < window:
        return RegimeReading(Regime.BEAR, symbol, len(values))
    close = float(values[-1])
    ma = float(np.mean(values[-window:]))
    return RegimeReading(Regime.BULL if close > ma else Regime.BEAR, symbol, len(values), close, ma)
