"""Shared indicators (strategies.md §0.4 B3–B7, B9). Pure, no I/O, no clock of their own.

* :class:`SessionVwap` — B3 session VWAP over 1m bars, fed by completed bars, by in-progress bars or
  by single trades, all through one formula (``tp = (H+L+C)/3``, ``C`` when H/L are missing). Bars
  are keyed by their start minute and *upserted*, so a tick-built minute later replaced by the REST
  bar of the same minute (or the reverse) is counted once: a symbol changing data source keeps one
  continuous VWAP.
* :class:`Atr` / :func:`atr` — B5 Wilder ATR seeded with the mean of the first ``n`` true ranges.
* :func:`sma`, :func:`sma_slope` — B4 (slope = SMA_t − SMA_{t−5}).
* :func:`rvol` — B6.
* :class:`TickImbalance` — B7 over a trailing time window.
* :func:`pct`, :func:`cpr`, :func:`zscores`, :func:`percentiles`, :func:`minmax_norm`,
  :func:`clip01`, :func:`efficiency_ratio` — B9 helpers.

Choices where the spec is silent (**[resolved]**):

* ATR: the first bar has no previous close, so its TR is ``H − L``.
* Tick imbalance: the first trade without an aggressor flag and without a previous price has no
  side and is left out; "< 60 s of ticks" means the time from the first trade this tracker ever
  saw (capped at the window) to ``now`` is under ``min_seconds``; a window without any value is
  also undefined (``None``).
* ``percentiles``: rank / (n − 1) with ties given their mean rank; one value → 0.5.
* ``minmax_norm``: all values equal → 0.5 each. ``zscores``: population std; std 0 → 0 each.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EPS = 1e-12

# --------------------------------------------------------------------------- B9 helpers


def clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def pct(a: float, b: float) -> float:
    """``a/b − 1`` (B9)."""
    return a / b - 1.0


def cpr(close: float, low: float, high: float, eps: float = 1e-9) -> float:
    """Close position in range ``(C − L)/(H − L + ε)`` (B9)."""
    return (close - low) / (high - low + eps)


def zscores(values: Sequence[float]) -> list[float]:
    """Cross-sectional z-scores (population standard deviation); constant input → zeros."""
    n = len(values)
    if n == 0:
        return []
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n
    sd = math.sqrt(var)
    if sd <= EPS:
        return [0.0] * n
    return [(v - mean) / sd for v in values]


def percentiles(values: Sequence[float]) -> list[float]:
    """Cross-sectional percentile rank in [0, 1]: rank/(n−1), ties share their mean rank."""
    n = len(values)
    if n == 0:
        return []
    if n == 1:
        return [0.5]
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean_rank = (i + j) / 2.0
        for k in range(i, j + 1):
            ranks[order[k]] = mean_rank
        i = j + 1
    return [r / (n - 1) for r in ranks]


def minmax_norm(values: Sequence[float]) -> list[float]:
    """Min-max normalisation to [0, 1]; constant input → 0.5 each."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo <= EPS:
        return [0.5] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def efficiency_ratio(closes: Sequence[float]) -> float | None:
    """Kaufman efficiency ratio ``|C_last − C_first| / Σ|C_i − C_{i−1}|``; None for < 2 closes.

    A path without any movement (Σ = 0) has ratio 0.
    """
    if len(closes) < 2:
        return None
    path = sum(abs(closes[i] - closes[i - 1]) for i in range(1, len(closes)))
    if path <= EPS:
        return 0.0
    return abs(closes[-1] - closes[0]) / path


def mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


# --------------------------------------------------------------------------- B4 SMA


def sma(values: Sequence[float], n: int) -> float | None:
    """Mean of the last ``n`` values; None with fewer than ``n``."""
    if n <= 0:
        raise ValueError("n must be > 0")
    if len(values) < n:
        return None
    return sum(values[-n:]) / n


def sma_slope(values: Sequence[float], n: int, lag: int = 5) -> float | None:
    """B4 slope ``SMA_t − SMA_{t−lag}`` (lag 5 bars); None with fewer than ``n + lag`` values."""
    if len(values) < n + lag:
        return None
    now = sma(values, n)
    before = sma(values[: len(values) - lag], n)
    assert now is not None and before is not None
    return now - before


# --------------------------------------------------------------------------- B6 relative volume


def rvol(v_now: float, v_baseline: float | None) -> float | None:
    """``V_now / V_baseline``; None when the baseline is missing or not positive."""
    if v_baseline is None or v_baseline <= 0:
        return None
    return v_now / v_baseline


# --------------------------------------------------------------------------- B5 ATR


def true_range(high: float, low: float, prev_close: float | None) -> float:
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


class Atr:
    """Incremental Wilder ATR(n), seeded with the mean of the first ``n`` true ranges."""

    def __init__(self, n: int = 14) -> None:
        if n <= 0:
            raise ValueError("n must be > 0")
        self.n = n
        self._prev_close: float | None = None
        self._seed: list[float] = []
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        tr = true_range(high, low, self._prev_close)
        self._prev_close = close
        if self.value is None:
            self._seed.append(tr)
            if len(self._seed) == self.n:
                self.value = sum(self._seed) / self.n
                self._seed.clear()
        else:
            self.value = (self.value * (self.n - 1) + tr) / self.n
        return self.value


def atr(bars: Iterable[Any], n: int = 14) -> float | None:
    """ATR(n) after the given bars (objects with ``high``, ``low``, ``close`` or (h, l, c) tuples)."""
    ind = Atr(n)
    for b in bars:
        if isinstance(b, tuple):
            h, lo, c = b
        else:
            h, lo, c = b.high, b.low, b.close
        ind.update(h, lo, c)
    return ind.value


# --------------------------------------------------------------------------- B3 session VWAP


def typical_price(high: float | None, low: float | None, close: float) -> float:
    if high is None or low is None:
        return close
    return (high + low + close) / 3.0


@dataclass(slots=True)
class _MinuteBar:
    high: float | None
    low: float | None
    close: float
    volume: float


class SessionVwap:
    """B3 session VWAP ``Σ tp_i·V_i / Σ V_i`` over 1m bars keyed by start minute (any hashable key).

    ``upsert_bar`` sets (or replaces) the bar of a minute; ``add_trade`` folds one trade into the
    bar of its minute (building H/L/C/V as B2 does). Both update the sums in O(1).
    """

    def __init__(self) -> None:
        self._bars: dict[Any, _MinuteBar] = {}
        self._pv = 0.0
        self._v = 0.0

    def _contribution(self, bar: _MinuteBar) -> tuple[float, float]:
        return typical_price(bar.high, bar.low, bar.close) * bar.volume, bar.volume

    def _replace(self, key: Any, bar: _MinuteBar) -> None:
        old = self._bars.get(key)
        if old is not None:
            pv, v = self._contribution(old)
            self._pv -= pv
            self._v -= v
        self._bars[key] = bar
        pv, v = self._contribution(bar)
        self._pv += pv
        self._v += v

    def upsert_bar(self, key: Any, high: float | None, low: float | None, close: float, volume: float) -> None:
        self._replace(key, _MinuteBar(high, low, close, float(volume)))

    def add_trade(self, key: Any, price: float, qty: float) -> None:
        bar = self._bars.get(key)
        if bar is None:
            new = _MinuteBar(price, price, price, float(qty))
        else:
            hi = price if bar.high is None else max(bar.high, price)
            lo = price if bar.low is None else min(bar.low, price)
            new = _MinuteBar(hi, lo, price, bar.volume + qty)
        self._replace(key, new)

    def has(self, key: Any) -> bool:
        return key in self._bars

    @property
    def volume(self) -> float:
        return self._v

    @property
    def value(self) -> float | None:
        if self._v <= EPS:
            return None
        return self._pv / self._v


# --------------------------------------------------------------------------- B7 tick imbalance


def _aggressor_side(aggressor: Any) -> int | None:
    """+1 buy, −1 sell, None unknown. Accepts bool (True = buy), 'BUY'/'SELL'/'B'/'S' (any case,
    so ``broker_core.models.Side`` too) and +1/−1; anything else falls back to the tick rule."""
    if aggressor is None:
        return None
    if isinstance(aggressor, bool):
        return 1 if aggressor else -1
    if isinstance(aggressor, (int, float)):
        return {1: 1, -1: -1}.get(int(aggressor)) if aggressor in (1, -1) else None
    text = str(aggressor).upper()
    if text in ("BUY", "B"):
        return 1
    if text in ("SELL", "S"):
        return -1
    return None


class TickImbalance:
    """B7: ``(buy_value − sell_value)/(buy_value + sell_value)`` over a trailing window.

    Each trade is buy/sell by the feed's aggressor flag when given, else by the tick rule
    (price up → buy, down → sell, unchanged → previous side).
    """

    def __init__(self, window_seconds: float = 120.0, min_seconds: float = 60.0) -> None:
        self.window = float(window_seconds)
        self.min_seconds = float(min_seconds)
        self._trades: deque[tuple[datetime, int, float]] = deque()
        self._buy = 0.0
        self._sell = 0.0
        self._first_ts: datetime | None = None
        self._prev_price: float | None = None
        self._prev_side: int | None = None

    def classify(self, price: float, aggressor: Any = None) -> int | None:
        side = _aggressor_side(aggressor)
        if side is None and self._prev_price is not None:
            if price > self._prev_price:
                side = 1
            elif price < self._prev_price:
                side = -1
            else:
                side = self._prev_side
        return side

    def add(self, ts: datetime, price: float, qty: float, aggressor: Any = None) -> int | None:
        """Record one trade; returns the side used (+1 buy, −1 sell, None unclassified)."""
        side = self.classify(price, aggressor)
        self._prev_price = price
        if side is not None:
            self._prev_side = side
        if self._first_ts is None:
            self._first_ts = ts
        if side is not None:
            value = price * qty
            self._trades.append((ts, side, value))
            if side > 0:
                self._buy += value
            else:
                self._sell += value
        self._expire(ts)
        return side

    def _expire(self, now: datetime) -> None:
        while self._trades and (now - self._trades[0][0]).total_seconds() > self.window:
            _, side, value = self._trades.popleft()
            if side > 0:
                self._buy -= value
            else:
                self._sell -= value
        if not self._trades:
            self._buy = self._sell = 0.0

    def coverage_seconds(self, now: datetime) -> float:
        if self._first_ts is None:
            return 0.0
        return min(self.window, (now - self._first_ts).total_seconds())

    def value(self, now: datetime) -> float | None:
        self._expire(now)
        if self._first_ts is None or self.coverage_seconds(now) < self.min_seconds:
            return None
        total = self._buy + self._sell
        if total <= EPS:
            return None
        return max(-1.0, min(1.0, (self._buy - self._sell) / total))
