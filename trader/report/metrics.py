"""Performance metrics: pure functions on pandas series (no I/O, no run knowledge).

Definitions follow empyrical (``empyrical-reloaded``) for the return-based figures and quantstats for
the win rate, so a figure here can be checked against either library by hand:

=============  =====================================================================================
CAGR           empyrical ``annual_return``: ``(Π(1 + r))^(P / n) − 1`` for ``n`` periods, ``P`` periods a year
Sharpe         empyrical ``sharpe_ratio`` (risk-free 0): ``mean(r) / std(r, ddof=1) · √P``
Sortino        empyrical ``sortino_ratio`` (target 0): ``mean(r) · P / (√mean(min(r, 0)²) · √P)``
max drawdown   empyrical ``max_drawdown``: ``min(equity / cummax(equity) − 1)`` (≤ 0)
win rate       quantstats ``win_rate``: winners / non-zero outcomes (a flat trade or day counts for neither)
exposure       time in the market: share of the sessions' trading time with any position open
turnover       traded value (Σ |qty · price|) / average equity over the run (not annualised)
=============  =====================================================================================

Every function returns ``None`` where the figure is undefined (too few periods, zero dispersion, a zero
base) instead of NaN or ±inf, so its result goes into JSON as it is.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252
"""Trading days a year (empyrical's ``APPROX_BDAYS_PER_YEAR``)."""


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def period_returns(equity: pd.Series, base: float | None = None) -> pd.Series:
    """Simple returns of an equity (or price) series, one per value; the first one is measured against
    ``base`` (e.g. the start equity, or the benchmark's close before the first session), or dropped
    when ``base`` is None."""
    values = equity.astype(float)
    if base is not None:
        previous = values.shift(1)
        previous.iloc[:1] = base
        out = values / previous - 1.0
    else:
        out = values.pct_change().iloc[1:]
    return out.replace([np.inf, -np.inf], np.nan).dropna()


def cagr(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float | None:
    """Compound annual growth rate of per-period ``returns`` (empyrical ``annual_return``)."""
    n = len(returns)
    if n == 0:
        return None
    growth = float(np.prod(1.0 + returns.to_numpy(dtype=float)))
    if growth <= 0:
        return -1.0
    return _finite(growth ** (periods_per_year / n) - 1.0)


def total_return(returns: pd.Series) -> float | None:
    """``Π(1 + r) − 1`` (empyrical ``cum_returns_final``)."""
    if len(returns) == 0:
        return None
    return _finite(float(np.prod(1.0 + returns.to_numpy(dtype=float))) - 1.0)


def sharpe(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float | None:
    """Annualised Sharpe ratio with a zero risk-free rate (empyrical ``sharpe_ratio``)."""
    r = returns.to_numpy(dtype=float)
    if len(r) < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if sd == 0 or not math.isfinite(sd):
        return None
    return _finite(float(np.mean(r)) / sd * math.sqrt(periods_per_year))


def sortino(returns: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float | None:
    """Annualised Sortino ratio, target return 0 (empyrical ``sortino_ratio``: the downside deviation is
    the root mean square of ``min(r, 0)`` over *all* periods)."""
    r = returns.to_numpy(dtype=float)
    if len(r) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.square(np.minimum(r, 0.0))))) * math.sqrt(periods_per_year)
    if downside == 0:
        return None
    return _finite(float(np.mean(r)) * periods_per_year / downside)


def drawdown(equity: pd.Series) -> pd.Series:
    """``equity / running peak − 1`` at every point (0 at a new high, negative below it)."""
    values = equity.astype(float)
    peak = values.cummax()
    return (values / peak - 1.0).where(peak > 0, 0.0)


def max_drawdown(equity: pd.Series) -> float | None:
    """The deepest drawdown of the series (≤ 0; empyrical ``max_drawdown``); None for an empty series."""
    if len(equity) == 0:
        return None
    return _finite(float(drawdown(equity).min()))


def win_rate(outcomes: Iterable[float]) -> float | None:
    """Winners / non-zero outcomes (quantstats ``win_rate``): trades' P&L or periods' returns."""
    values = [float(x) for x in outcomes if x is not None and math.isfinite(float(x)) and float(x) != 0.0]
    if not values:
        return None
    return sum(1 for x in values if x > 0) / len(values)


def exposure(in_market: pd.Series, windows: Sequence[tuple[datetime, datetime]]) -> float | None:
    """Share of the trading time in ``windows`` (each session's open, close) with a position open.

    ``in_market`` is a step function: index = times at which the book changed (sorted), value = True
    while any position is open from that time on; before its first point the book is flat."""
    total = sum(max(0.0, (close - open_).total_seconds()) for open_, close in windows)
    if total <= 0:
        return None
    times = [pd.Timestamp(t) for t in in_market.index]
    states = [bool(v) for v in in_market.to_numpy()]
    held = 0.0
    for open_, close in windows:
        lo, hi = pd.Timestamp(open_), pd.Timestamp(close)
        first, last = bisect.bisect_right(times, lo), bisect.bisect_left(times, hi)
        cuts = [lo, *times[first:last], hi]
        state = states[first - 1] if first > 0 else False
        for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            if i > 0:
                state = states[first + i - 1]
            if state:
                held += (b - a).total_seconds()
    return held / total


def turnover(traded_value: float, equity: pd.Series) -> float | None:
    """Traded value / average equity over the run (how many times the book was turned over)."""
    if len(equity) == 0:
        return None
    avg = float(equity.astype(float).mean())
    if avg <= 0:
        return None
    return _finite(traded_value / avg)
