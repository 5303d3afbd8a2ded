"""Per-symbol 1m data of the session: bars by start minute, session VWAP, last price.

Bars come from three places and are merged by start minute (B2/B3):

* REST 1m bars (the 09:15 scan, breadth polling) and completed tick-built bars (SDK BarBuilder) via
  :meth:`MinuteSeries.upsert_bar` — these are *final* for their minute;
* single trades via :meth:`MinuteSeries.add_trade`, which build the in-progress minute (used for
  ``V_current_1m`` and the in-progress VWAP) until a final bar of that minute replaces them.

Bar objects are duck-typed: ``start`` or ``ts`` (bar start), ``open``, ``high``, ``low``, ``close``,
``volume`` and optionally ``value`` (attribute, mapping key, or ``extra["value"]``). A bar without a
traded value is given ``tp·V`` (**[resolved]**, the SDK's ``Bar.from_rest`` does the same).
Minutes without a bar have volume and value 0 (B2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from strategies.kmp.timing import kst, minute_key
from strategies.sdk.indicators import SessionVwap, atr, typical_price

SESSION_OPEN_MINUTE = 9 * 60


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def bar_start(bar: Any) -> datetime:
    start = getattr(bar, "start", None)  # the SDK's Bar: baselines read ~72,000 of them every premarket
    if type(start) is datetime:
        return kst(start)
    for name in ("start", "ts", "timestamp"):
        v = field_of(bar, name)
        if v is not None:
            if isinstance(v, str):
                v = datetime.fromisoformat(v)
            return kst(v)
    raise ValueError(f"bar has no start time: {bar!r}")


def bar_value(bar: Any) -> float:
    """Traded value of a bar (Σ price·qty), or ``tp·V`` when the source has none."""
    v = field_of(bar, "value")
    if v is None:
        extra = field_of(bar, "extra")
        if isinstance(extra, Mapping):
            v = extra.get("value")
    if v is not None:
        return float(v)
    return typical_price(
        float(field_of(bar, "high")), float(field_of(bar, "low")), float(field_of(bar, "close"))
    ) * float(field_of(bar, "volume") or 0)


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


class MinuteSeries:
    """One symbol's minutes of one session."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.bars: dict[int, MinuteAgg] = {}
        self.vwap = SessionVwap()
        self.last_price: float | None = None
        self.last_ts: datetime | None = None
        """Time of the newest price (trade ts, or bar end for a bar)."""

    # ---- input
    def add_trade(self, ts: datetime, price: float, qty: float) -> bool:
        """Fold one trade into its minute; returns False when it is not of this session."""
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
            return True  # a final bar of this minute already counts this trade
        if agg is None:
            agg = MinuteAgg(m, price, price, price, price, float(qty), price * qty, False)
            self.bars[m] = agg
        else:
            agg.high = max(agg.high, price)
            agg.low = min(agg.low, price)
            agg.close = price
            agg.volume += qty
            agg.value += price * qty
        self.vwap.upsert_bar(m, agg.high, agg.low, agg.close, agg.volume)
        return True

    def upsert_bar(self, bar: Any) -> int | None:
        """Set the final bar of its minute; returns the minute, or None if not of this session."""
        start = bar_start(bar)
        if start.date() != self.day:
            return None
        m = minute_key(start)
        o, h, lo, c = (float(field_of(bar, n)) for n in ("open", "high", "low", "close"))
        v = float(field_of(bar, "volume") or 0)
        agg = MinuteAgg(m, o, h, lo, c, v, bar_value(bar), True)
        end = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if self.last_ts is None or end > self.last_ts:
            self.last_price, self.last_ts = c, end
        if m < SESSION_OPEN_MINUTE:
            return m
        self.bars[m] = agg
        self.vwap.upsert_bar(m, h, lo, c, v)
        return m

    # ---- queries
    def volume(self, minute: int) -> float:
        agg = self.bars.get(minute)
        return agg.volume if agg is not None else 0.0

    def value_between(self, first: int, last_exclusive: int) -> float:
        return sum(a.value for m, a in self.bars.items() if first <= m < last_exclusive)

    def completed(self, before_minute: int) -> list[MinuteAgg]:
        """Bars of minutes < ``before_minute``, oldest first."""
        return [self.bars[m] for m in sorted(self.bars) if m < before_minute]

    def atr(self, n: int, before_minute: int) -> float | None:
        return atr([(a.high, a.low, a.close) for a in self.completed(before_minute)], n)

    @property
    def vwap_value(self) -> float | None:
        return self.vwap.value
