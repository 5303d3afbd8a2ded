"""30-minute bars (strategies.md N16): aligned to 09:00, the last one 15:00–15:20 (13 a session).

Built from 1m bars (B2) — the stream's (SDK ``BarBuilder``) or the REST proxy's — by start minute:
O of the first minute, H max, L min, C of the last minute, V and value summed. A 30-minute span
without any 1m bar has no 30m bar. :class:`MinuteBook` keeps one session's 1m bars per symbol keyed
by start minute, so a REST bar replacing a stream bar of the same minute (or the reverse) counts once.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.clock import KST

FIRST_BAR = time(9, 0)
LAST_BAR = time(15, 0)
LAST_BAR_END = time(15, 20)
BAR = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Bar30:
    symbol: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    value: float = 0.0

    @property
    def end(self) -> datetime:
        return bar_end(self.start)

    @property
    def day(self) -> date:
        return self.start.astimezone(KST).date()


def bar_starts(day: date) -> list[datetime]:
    """The 13 bar starts of a session: 09:00, 09:30, …, 15:00."""
    first = datetime.combine(day, FIRST_BAR, KST)
    return [first + i * BAR for i in range(13)]


def bar_end(start: datetime) -> datetime:
    """End of the bar starting at ``start`` (15:20 for the 15:00 bar)."""
    local = start.astimezone(KST)
    if local.time() >= LAST_BAR:
        return datetime.combine(local.date(), LAST_BAR_END, KST)
    return local + BAR


def bar_start_of(ts: datetime) -> datetime | None:
    """Start of the 30m bar holding the 1m bar (or instant) ``ts``; None outside 09:00–15:19."""
    local = ts.astimezone(KST)
    t = local.time()
    if t < FIRST_BAR or t >= LAST_BAR_END:
        return None
    minutes = (local.hour - 9) * 60 + local.minute
    k = min(minutes // 30, 12)
    return datetime.combine(local.date(), FIRST_BAR, KST) + k * BAR


def completed_starts(day: date, now: datetime) -> list[datetime]:
    """Bar starts of ``day`` whose bar has ended by ``now``."""
    return [s for s in bar_starts(day) if bar_end(s) <= now]


def _field(bar: Any, name: str) -> Any:
    return bar[name] if isinstance(bar, dict) else getattr(bar, name)


def aggregate(symbol: str, minute_bars: Iterable[Any]) -> list[Bar30]:
    """30m bars from 1m bars (objects or dicts with start/open/high/low/close/volume[/value])."""
    groups: dict[datetime, list[Any]] = {}
    for b in minute_bars:
        start = bar_start_of(_field(b, "start"))
        if start is not None:
            groups.setdefault(start, []).append(b)
    out: list[Bar30] = []
    for start in sorted(groups):
        bars = sorted(groups[start], key=lambda b: _field(b, "start"))
        volume = sum(float(_field(b, "volume")) for b in bars)
        value = 0.0
        for b in bars:
            v = b.get("value") if isinstance(b, dict) else getattr(b, "value", None)
            if v is None:
                h, lo, c = (float(_field(b, k)) for k in ("high", "low", "close"))
                v = (h + lo + c) / 3 * float(_field(b, "volume"))
            value += float(v)
        out.append(
            Bar30(
                symbol=symbol,
                start=start,
                open=float(_field(bars[0], "open")),
                high=max(float(_field(b, "high")) for b in bars),
                low=min(float(_field(b, "low")) for b in bars),
                close=float(_field(bars[-1], "close")),
                volume=volume,
                value=value,
            )
        )
    return out


class MinuteBook:
    """One session's 1m bars per symbol, keyed by start minute (upserts)."""

    def __init__(self) -> None:
        self.day: date | None = None
        self._bars: dict[str, dict[datetime, Any]] = {}

    def add(self, symbol: str, bar: Any) -> None:
        start = _field(bar, "start").astimezone(KST)
        if self.day != start.date():
            self.day, self._bars = start.date(), {}
        self._bars.setdefault(symbol, {})[start] = bar

    def window(self, symbol: str, start: datetime, end: datetime) -> list[Any]:
        """1m bars of ``symbol`` with ``start <= bar start < end``."""
        bars = self._bars.get(symbol, {})
        return [bars[k] for k in sorted(bars) if start <= k < end]
