"""S3.3: the 13 factors of the quant model, from daily bars, then cross-sectionally z-scored.

Every factor function takes wide frames (index = session date ascending, one column per symbol; a
Series works too) and returns a frame of the same shape whose value at date t uses only rows ≤ t:
rolling windows, ``shift(+k)`` and recursive averages only — never a negative shift or a centred
window (no look-ahead; ``tests/unit/swing_ml/test_factors.py`` alters the data after t and checks).

==================  ========================================================================
feature             definition (prices are adjusted closes; OHLC scaled to them, see data.py)
==================  ========================================================================
ret_5 … ret_120     ``C_t / C_{t−n} − 1`` for n = 5, 20, 60, 120
vol_20              sample std (ddof 1) of the last 20 daily log returns (not annualised)
rsi_14              Wilder RSI: average gain/loss seeded with the mean of the first 14 changes,
                    then ``avg = (13·avg + x)/14``; ``100 − 100/(1+gain/loss)`` (100 if no loss,
                    50 if neither)
close_sma20         ``C / SMA20 − 1``
close_sma50         ``C / SMA50 − 1``
vol_ratio_5_20      mean volume of 5 sessions / mean volume of 20 sessions
atr14_close         Wilder ATR14 / C; TR = max(H−L, |H−C₋₁|, |L−C₋₁|) (H−L on the first bar);
                    ATR seeded with the mean of the first 14 TR
beta_60             ``cov(r, r_SPY) / var(r_SPY)`` over the last 60 simple daily returns
macd_hist           (MACD − signal) / C with MACD = EMA12 − EMA26 of C, signal = EMA9 of MACD
                    (EMAs ``adjust=False``); divided by C **[interpreted]** so that the cross-
                    section compares momentum, not price levels (a $900 stock's histogram in
                    dollars dwarfs a $40 stock's)
sector_rel_20       20-day return of the stock's sector ETF − 20-day return of SPY
==================  ========================================================================

Cross-section (:func:`cross_sectional_zscore`): per date over the symbols with a value,
``z = (x − mean) / std`` (ddof 0), then winsorised by clipping to ±3; fewer than ``min_names``
values that day → NaN (the model handles NaN). Wilder averages and EMAs depend on where the series
starts; give the pipeline ≥ :data:`MIN_HISTORY` sessions so the start no longer matters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import pandas as pd

from strategies.swing_ml.data import BENCHMARK, Panel

F = TypeVar("F", pd.DataFrame, pd.Series)

FEATURES: tuple[str, ...] = (
    "ret_5",
    "ret_20",
    "ret_60",
    "ret_120",
    "vol_20",
    "rsi_14",
    "close_sma20",
    "close_sma50",
    "vol_ratio_5_20",
    "atr14_close",
    "beta_60",
    "macd_hist",
    "sector_rel_20",
)
"""The model's ordered feature list (S5: a saved model must have exactly this list)."""

MIN_HISTORY = 250
"""Sessions of history before the first decision date (120-day return + Wilder/EMA warm-up)."""
WINSOR_Z = 3.0
MIN_NAMES = 5


# -- single factors --------------------------------------------------------------------------------


def ret_n(close: F, n: int) -> F:
    """``C_t / C_{t−n} − 1``."""
    return close / close.shift(n) - 1.0


def log_returns(close: F) -> F:
    return np.log(close / close.shift(1))


def vol_n(close: F, n: int = 20) -> F:
    """Sample std (ddof 1) of the last ``n`` daily log returns."""
    return log_returns(close).rolling(n, min_periods=n).std(ddof=1)


def wilder_mean(x: F, n: int) -> F:
    """Wilder's running average: NaN until ``n`` values, then their mean, then ``(avg·(n−1) + x)/n``.

    Seeded per column at its first full window; a later missing value is skipped (the average
    carries over and the output is NaN on that row)."""
    seed = x.rolling(n, min_periods=n).mean()
    has = seed.notna()
    first = has & (has.cumsum() == 1)
    started = has.cumsum() >= 1
    seeded = x.where(started & ~first, seed).where(started)
    out = seeded.ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean()
    return out.where(started & x.notna())


def rsi(close: F, n: int = 14) -> F:
    """Wilder RSI in [0, 100]."""
    delta = close.diff()
    gain = wilder_mean(delta.clip(lower=0.0), n)
    loss = wilder_mean((-delta).clip(lower=0.0), n)
    out = 100.0 - 100.0 / (1.0 + gain / loss)
    out = out.where(loss > 0, np.where(gain > 0, 100.0, 50.0))
    return out.where(gain.notna() & loss.notna())


def close_to_sma(close: F, n: int) -> F:
    """``C / SMA_n − 1``."""
    return close / close.rolling(n, min_periods=n).mean() - 1.0


def volume_ratio(volume: F, short: int = 5, long: int = 20) -> F:
    """Mean volume of ``short`` sessions / mean volume of ``long`` sessions."""
    return volume.rolling(short, min_periods=short).mean() / volume.rolling(long, min_periods=long).mean()


def true_range(high: F, low: F, close: F) -> F:
    """``max(H−L, |H−C₋₁|, |L−C₋₁|)``; H−L where there is no previous close."""
    prev = close.shift(1)
    hl = high - low
    tr = np.fmax(hl, np.fmax((high - prev).abs(), (low - prev).abs()))
    return tr.where(hl.notna())


def atr(high: F, low: F, close: F, n: int = 14) -> F:
    """Wilder ATR_n."""
    return wilder_mean(true_range(high, low, close), n)


def atr_to_close(high: F, low: F, close: F, n: int = 14) -> F:
    return atr(high, low, close, n) / close


def beta(close: pd.DataFrame, benchmark_close: pd.Series, n: int = 60) -> pd.DataFrame:
    """``cov(r, r_b) / var(r_b)`` over the last ``n`` simple daily returns (rows where both exist)."""
    r = close.pct_change(fill_method=None)
    m = benchmark_close.pct_change(fill_method=None).reindex(r.index)
    both = r.notna() & pd.DataFrame({c: m.notna() for c in r.columns}, index=r.index)
    mm = pd.DataFrame({c: m for c in r.columns}, index=r.index).where(both)
    rr = r.where(both)

    def mean(x: pd.DataFrame) -> pd.DataFrame:
        return x.rolling(n, min_periods=n).mean()

    cov = mean(rr * mm) - mean(rr) * mean(mm)
    var = mean(mm * mm) - mean(mm) ** 2
    return cov / var.where(var > 0)


def macd_histogram(close: F, fast: int = 12, slow: int = 26, signal: int = 9) -> F:
    """MACD − signal in price units (EMAs with ``adjust=False``; NaN during the warm-up)."""
    ema_fast = close.ewm(span=fast, adjust=False, min_periods=fast).mean()
    ema_slow = close.ewm(span=slow, adjust=False, min_periods=slow).mean()
    macd = ema_fast - ema_slow
    sig = macd.ewm(span=signal, adjust=False, min_periods=signal).mean()
    return macd - sig


def sector_relative(
    close: pd.DataFrame, symbols: Sequence[str], sector_map: Mapping[str, str], n: int = 20, benchmark: str = BENCHMARK
) -> pd.DataFrame:
    """Per stock: ``ret_n(sector ETF) − ret_n(SPY)`` (NaN when the sector ETF is unknown)."""
    r = ret_n(close, n)
    spy = r[benchmark]
    cols = {}
    for s in symbols:
        etf = sector_map.get(s)
        cols[s] = (r[etf] - spy) if etf is not None and etf in r.columns else pd.Series(np.nan, index=r.index)
    return pd.DataFrame(cols, index=r.index)


# -- all factors, cross-section ------------------------------------------------------------------


def raw_factors(
    panel: Panel, symbols: Sequence[str], sector_map: Mapping[str, str], benchmark: str = BENCHMARK
) -> dict[str, pd.DataFrame]:
    """The 13 factors of ``symbols`` (wide frames), before the cross-section, keyed by FEATURES."""
    if benchmark not in panel.close.columns:
        raise ValueError(f"the panel lacks the benchmark {benchmark}")
    syms = [s for s in symbols if s in panel.close.columns]
    c, h, lo, v = (panel.close[syms], panel.high[syms], panel.low[syms], panel.volume[syms])
    out: dict[str, pd.DataFrame] = {
        "ret_5": ret_n(c, 5),
        "ret_20": ret_n(c, 20),
        "ret_60": ret_n(c, 60),
        "ret_120": ret_n(c, 120),
        "vol_20": vol_n(c, 20),
        "rsi_14": rsi(c, 14),
        "close_sma20": close_to_sma(c, 20),
        "close_sma50": close_to_sma(c, 50),
        "vol_ratio_5_20": volume_ratio(v, 5, 20),
        "atr14_close": atr_to_close(h, lo, c, 14),
        "beta_60": beta(c, panel.close[benchmark], 60),
        "macd_hist": macd_histogram(c) / c,
        "sector_rel_20": sector_relative(panel.close, syms, sector_map, 20, benchmark),
    }
    assert tuple(out) == FEATURES
    return out


def cross_sectional_zscore(frame: pd.DataFrame, clip: float = WINSOR_Z, min_names: int = MIN_NAMES) -> pd.DataFrame:
    """Per row: z-score over the non-NaN symbols (ddof 0), clipped to ±``clip``; rows with fewer than
    ``min_names`` values → NaN; a row without dispersion → 0."""
    x = frame.replace([np.inf, -np.inf], np.nan)
    mean = x.mean(axis=1)
    std = x.std(axis=1, ddof=0)
    count = x.notna().sum(axis=1)
    z = x.sub(mean, axis=0).div(std.where(std > 0), axis=0)
    flat = x.notna().mul(std == 0, axis=0)
    z = z.mask(flat, 0.0).clip(lower=-clip, upper=clip)
    return z.mask(x.notna().mul(count < min_names, axis=0))


def feature_matrix(
    panel: Panel,
    symbols: Sequence[str],
    sector_map: Mapping[str, str],
    benchmark: str = BENCHMARK,
    zscore: Callable[[pd.DataFrame], pd.DataFrame] = cross_sectional_zscore,
) -> pd.DataFrame:
    """Long z-scored features: index (date, symbol), columns = FEATURES in order; rows whose symbol
    has no bar that day are dropped (a row may still hold NaN features during warm-up)."""
    raw = raw_factors(panel, symbols, sector_map, benchmark)
    syms = list(raw["ret_5"].columns)
    present = panel.close[syms].notna().stack()
    cols = {name: zscore(frame).stack() for name, frame in raw.items()}
    long = pd.DataFrame(cols).reindex(present.index)
    long = long[present.to_numpy()]
    long.index = long.index.set_names(["date", "symbol"])
    return long[list(FEATURES)]
