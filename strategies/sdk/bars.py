"""One-minute bars built from trade events (strategies.md §0.4 B2).

A bar is labelled by its start minute: O = first trade, H = max, L = min, C = last trade,
V = Σ qty, value = Σ price·qty. It closes at the first trade at or after its minute's end, or at
end + ``grace_sec`` (2 s) when the caller's :meth:`BarBuilder.flush` sees that time — so a quiet
symbol still gets its bar shortly after the minute. A minute without trades has no bar.

A bar that may miss trades — its minute began before the subscription started or overlapped a
stream outage (:meth:`BarBuilder.mark_gap`) — is still emitted, flagged ``partial=True``, so a
strategy never mistakes a short first bar for a quiet minute.

Trades older than the symbol's open bar (out of order, or for a minute already closed) are
dropped and counted in :attr:`BarBuilder.late_trades`; a closed bar is never changed.
Pure: no clock, no I/O — time comes in with the trades and with ``flush(now)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from broker_core.clock import KST

_START_KEYS = ("start", "ts", "timestamp", "date")


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    start: datetime
    """Bar start (KST); the label of the bar."""
    open: float
    high: float
    low: float
    close: float
    volume: int
    value: float
    """Σ price·qty (traded value, ₩)."""
    trades: int = 0
    interval: str = "1m"
    partial: bool = False
    """True when trades of this minute may be missing (see :meth:`BarBuilder.mark_gap`)."""

    @classmethod
    def from_rest(cls, symbol: str, row: dict[str, Any], interval: str = "1m") -> Bar:
        """Map a REST bar (the OMS market-data proxy) to the same shape as tick-built bars.

        Accepts the start under ``start``/``ts``/``timestamp``/``date``. When the row has no traded
        value it is approximated as typical price × volume (documented, since B3 uses that too).
        """
        raw = _start_of(row)
        if raw is None:
            raise ValueError(f"bar of {symbol} has no start time: {row!r}")
        start = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        if start.tzinfo is None:
            start = start.replace(tzinfo=KST)
        o, h, low, c = float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"])
        volume = int(row.get("volume") or 0)
        value = row.get("value")
        return cls(
            symbol=str(row.get("symbol") or symbol),
            start=start.astimezone(KST),
            open=o,
            high=h,
            low=low,
            close=c,
            volume=volume,
            value=float(value) if value is not None else (h + low + c) / 3 * volume,
            trades=int(row.get("trades") or 0),
            interval=interval,
        )


def _start_of(row: dict[str, Any]) -> Any:
    for key in _START_KEYS:
        value = row.get(key)
        if value is not None:
            return value
    return None


def minute_of(ts: datetime) -> datetime:
    """Start (KST) of the minute holding ``ts``."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("trade timestamp must be timezone-aware")
    return ts.astimezone(KST).replace(second=0, microsecond=0)


class BarBuilder:
    """Per-symbol 1m bars from trades; returns each bar once, when it closes."""

    def __init__(self, grace_sec: float = 2.0, on_open: Callable[[datetime], None] | None = None) -> None:
        self.grace = timedelta(seconds=grace_sec)
        self._open: dict[str, Bar] = {}
        self._last_closed: dict[str, datetime] = {}
        self._complete_from: dict[str, datetime] = {}
        self.late_trades = 0
        self.on_open = on_open
        """Called with the instant a newly opened bar is due to close (a flush job sleeping past it wakes)."""

    def mark_gap(self, symbol: str, now: datetime) -> None:
        """Trades of ``symbol`` before ``now`` may be missing (just subscribed, or reconnected): bars
        up to the minute holding ``now`` come out ``partial``."""
        self._complete_from[symbol] = max(self._complete_from.get(symbol, minute_of(now)), minute_of(now) + _MINUTE)

    def on_trade(self, symbol: str, price: float, qty: int, ts: datetime) -> list[Bar]:
        """Add one trade; returns the bar it closed (at most one), else an empty list."""
        minute = minute_of(ts)
        closed: list[Bar] = []
        bar = self._open.get(symbol)
        last_closed = self._last_closed.get(symbol)
        if (bar is not None and minute < bar.start) or (last_closed is not None and minute <= last_closed):
            self.late_trades += 1
            return closed
        if bar is not None and minute > bar.start:
            closed.append(self._close(symbol))
            bar = None
        if bar is None:
            self._open[symbol] = Bar(symbol, minute, price, price, price, price, qty, price * qty, 1)
            if self.on_open is not None:
                self.on_open(minute + _MINUTE + self.grace)
        else:
            self._open[symbol] = replace(
                bar,
                high=max(bar.high, price),
                low=min(bar.low, price),
                close=price,
                volume=bar.volume + qty,
                value=bar.value + price * qty,
                trades=bar.trades + 1,
            )
        return closed

    def on_event(self, event: dict[str, Any]) -> list[Bar]:
        """Convenience for an OMS stream ``trade`` event (``symbol``, ``price``, ``qty``, ISO ``ts``)."""
        ts = event["ts"]
        when = ts if isinstance(ts, datetime) else datetime.fromisoformat(ts)
        return self.on_trade(event["symbol"], float(event["price"]), int(event["qty"]), when)

    def flush(self, now: datetime) -> list[Bar]:
        """Close every bar whose minute ended at least ``grace_sec`` before ``now``."""
        due = [s for s, b in self._open.items() if now >= b.start + _MINUTE + self.grace]
        return sorted((self._close(s) for s in due), key=lambda b: (b.start, b.symbol))

    def next_due(self) -> datetime | None:
        """The earliest instant :meth:`flush` closes a bar (None: no bar is open)."""
        if not self._open:
            return None
        return min(b.start for b in self._open.values()) + _MINUTE + self.grace

    def current(self, symbol: str) -> Bar | None:
        """The in-progress bar of ``symbol`` (not yet closed), if any."""
        return self._open.get(symbol)

    def _close(self, symbol: str) -> Bar:
        bar = self._open.pop(symbol)
        self._last_closed[symbol] = bar.start
        complete_from = self._complete_from.get(symbol)
        if complete_from is not None and bar.start < complete_from:
            bar = replace(bar, partial=True)
        return bar


_MINUTE = timedelta(minutes=1)
