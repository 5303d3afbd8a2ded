"""Per-symbol 1m data of one session: bars by start minute, B3 session VWAP, open, HOD/LOD, volume.

Bars come from three places and are merged by start minute, so a symbol changing tier (and data
source) keeps one continuous VWAP (B3, P5):

* REST 1m bars (WARM/COLD polling, gap fills) and completed tick-built bars (SDK ``BarBuilder``)
  via :meth:`MinuteSeries.upsert_bar` — final for their minute (a later final bar of the same minute
  replaces the earlier one: the REST bar of a minute is re-fetched once, it may have grown);
* single trades via :meth:`MinuteSeries.add_trade`, which build the in-progress minute until a
  final bar of that minute replaces them.

Everything is O(1) per update except replacing the bar that holds the HOD or LOD with a smaller
range (rare: a partial tick-built bar replaced by its REST bar), which rescans the session.
Bars are duck-typed: ``start`` (or ``ts``), ``open``, ``high``, ``low``, ``close``, ``volume``,
optionally ``value``; attribute or mapping key.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from statistics import median
from typing import Any

from strategies.kpr.timing import MINUTE, kst, minute_key
from strategies.sdk.indicators import SessionVwap, typical_price

SESSION_OPEN_MINUTE = 9 * 60


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def bar_start(bar: Any) -> datetime:
    for name in ("start", "ts", "timestamp"):
        v = field_of(bar, name)
        if v is not None:
            if isinstance(v, str):
                v = datetime.fromisoformat(v)
            return kst(v)
    raise ValueError(f"bar has no start time: {bar!r}")


@dataclass(slots=True)
class MinuteAgg:
    minute: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    value: float
    final: bool


@dataclass(frozen=True, slots=True)
class BarView:
    """The OHLCV of one completed minute, as the rules read it."""

    minute: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class MinuteSeries:
    """One symbol's minutes of one session (from 09:00)."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.bars: dict[int, MinuteAgg] = {}
        self.final_minutes: list[int] = []
        """Minutes holding a final bar, ascending."""
        self.vwap = SessionVwap()
        self.last_price: float | None = None
        self.last_ts: datetime | None = None
        self.open: float | None = None
        self.open_minute: int | None = None
        self.hod: float | None = None
        self.hod_minute: int | None = None
        """Minute of the first bar that reached the HOD [resolved: ties keep the earliest]."""
        self.lod: float | None = None
        self.cum_volume = 0.0
        self.cum_value = 0.0

    # ---- input
    def add_trade(self, ts: datetime, price: float, qty: float) -> bool:
        """Fold one trade into its minute; False when it is not of this session."""
        k = kst(ts)
        if k.date() != self.day:
            return False
        if self.last_ts is None or k >= self.last_ts:
            self.last_price, self.last_ts = price, k
        m = minute_key(k)
        if m < SESSION_OPEN_MINUTE:
            return True
        agg = self.bars.get(m)
        if agg is not None and agg.final:
            return True
        if agg is None:
            new = MinuteAgg(m, price, price, price, price, float(qty), price * qty, False)
        else:
            new = MinuteAgg(
                m,
                agg.open,
                max(agg.high, price),
                min(agg.low, price),
                price,
                agg.volume + qty,
                agg.value + price * qty,
                False,
            )
        self._put(new)
        return True

    def upsert_bar(self, bar: Any) -> int | None:
        """Set the final bar of its minute; returns the minute, or None if not of this session."""
        start = bar_start(bar)
        if start.date() != self.day:
            return None
        m = minute_key(start)
        o, h, lo, c = (float(field_of(bar, n)) for n in ("open", "high", "low", "close"))
        v = float(field_of(bar, "volume") or 0)
        value = field_of(bar, "value")
        val = float(value) if value is not None else typical_price(h, lo, c) * v
        end_ts = start.replace(second=0, microsecond=0) + MINUTE
        if self.last_ts is None or end_ts > self.last_ts:
            self.last_price, self.last_ts = c, end_ts
        if m < SESSION_OPEN_MINUTE:
            return m
        self._put(MinuteAgg(m, o, h, lo, c, v, val, True))
        return m

    def _put(self, agg: MinuteAgg) -> None:
        m = agg.minute
        old = self.bars.get(m)
        self.bars[m] = agg
        if old is not None:
            self.cum_volume -= old.volume
            self.cum_value -= old.value
        self.cum_volume += agg.volume
        self.cum_value += agg.value
        if agg.final and (old is None or not old.final):
            insort(self.final_minutes, m)
        self.vwap.upsert_bar(m, agg.high, agg.low, agg.close, agg.volume)
        if self.open_minute is None or m < self.open_minute:
            self.open, self.open_minute = agg.open, m
        elif m == self.open_minute:
            self.open = agg.open
        shrank = old is not None and (
            (old.high == self.hod and agg.high < old.high) or (old.low == self.lod and agg.low > old.low)
        )
        if shrank:
            self._rescan_extremes()
            return
        if self.hod is None or agg.high > self.hod or (agg.high == self.hod and m < (self.hod_minute or m)):
            self.hod, self.hod_minute = agg.high, m
        if self.lod is None or agg.low < self.lod:
            self.lod = agg.low

    def _rescan_extremes(self) -> None:
        self.hod = self.hod_minute = self.lod = None
        for m in sorted(self.bars):
            a = self.bars[m]
            if self.hod is None or a.high > self.hod:
                self.hod, self.hod_minute = a.high, m
            if self.lod is None or a.low < self.lod:
                self.lod = a.low

    # ---- queries
    @property
    def vwap_value(self) -> float | None:
        return self.vwap.value

    @property
    def last_final_minute(self) -> int | None:
        return self.final_minutes[-1] if self.final_minutes else None

    def bar(self, minute: int) -> BarView | None:
        a = self.bars.get(minute)
        if a is None:
            return None
        return BarView(a.minute, a.open, a.high, a.low, a.close, a.volume)

    def median_volume_before(self, minute: int, n: int) -> tuple[float | None, int]:
        """Median volume of the last ``n`` final bars before ``minute``, and how many there were."""
        i = bisect_left(self.final_minutes, minute)
        window = [self.bars[m].volume for m in self.final_minutes[max(0, i - n) : i]]
        return (median(window) if window else None), len(window)

    def drop_from_open(self) -> float | None:
        """``pct(last, open)``: negative when the price is below the session open."""
        if self.open is None or self.last_price is None or self.open <= 0:
            return None
        return self.last_price / self.open - 1.0

    def depth(self, price: float | None = None) -> float | None:
        """``(VWAP − price)/VWAP`` (price = last by default): positive below VWAP."""
        vwap = self.vwap_value
        px = self.last_price if price is None else price
        if vwap is None or px is None or vwap <= 0:
            return None
        return (vwap - px) / vwap

    def day_range(self) -> float | None:
        if self.hod is None or self.lod is None:
            return None
        return self.hod - self.lod
