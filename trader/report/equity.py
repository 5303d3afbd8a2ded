"""The run's book rebuilt from its fills: realized P&L, open positions and the equity curve.

Method (also written into report.json as ``equity_method``):

* The fills, in time order, go through the OMS's own ledger (``oms.core.ledger.Ledger``): average cost
  per (strategy, symbol), fees (commission + tax) realized when paid, a sale realizes
  ``(price − cost basis) · qty − fees``. Realized P&L per strategy and per trading day is therefore the
  number the OMS itself books.
* Open positions are marked to market at the **last known price** of their symbol: the price of the
  symbol's latest fill so far, or, at a session's close when a ``marks`` function is given, that
  function's price for the day (e.g. the daily close).
* ``equity(t) = start equity + realized(t) + Σ open qty · (mark − cost basis)``. One point at the first
  session's open (the start equity), one after every fill, one at every session's close.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd

from oms.core.ledger import AllocationShortfall, Ledger
from oms.core.types import FillRecord
from oms.store import codec
from trader.report.collect import RunData

Marks = Callable[[str, date], float | None]
"""(symbol, session day) → the price to mark an open position at that session's close, or None."""

EQUITY_METHOD = (
    "Fills replayed in time order through the OMS ledger (average cost, fees realized when paid); open "
    "positions marked to market at the last known price of their symbol (its latest fill price, or the "
    "session close price when one was supplied); equity = start equity + realized P&L + unrealized P&L, "
    "one point at the first session's open, after every fill and at every session's close."
)


@dataclass
class Book:
    curve: pd.Series
    """Equity by time (aware UTC index, sorted; several points may share a time)."""
    daily: pd.Series
    """Equity at each session's close, indexed by session date."""
    start_equity: float
    realized: dict[str, float]
    realized_by_day: dict[date, dict[str, float]]
    unrealized: dict[str, float]
    """strategy → unrealized P&L at the end of the run."""
    open_positions: dict[str, dict[str, int]]
    """strategy → {symbol: qty} still open at the end."""
    in_market: pd.Series
    """True from a time on while any position is open (step function, aware UTC index)."""
    traded_value: float
    notes: list[str] = field(default_factory=list)


def _unrealized(ledger: Ledger, last: dict[str, float], strategies: set[str]) -> dict[str, float]:
    out = dict.fromkeys(sorted(strategies), 0.0)
    for sid in strategies:
        for sym, a in ledger.allocations_of(sid).items():
            out[sid] += a.qty * (last.get(sym, a.cost_basis) - a.cost_basis)
    return dict(out)


def _fill_records(run: RunData) -> list[FillRecord]:
    if run.fills.empty:
        return []
    fills = [codec.from_row("fills", row) for row in run.fills.to_dict("records")]
    return sorted(fills, key=lambda f: (f.ts, f.execution_id))


def build_book(run: RunData, marks: Marks | None = None) -> Book:
    """Replay the run's fills (see the module's docstring)."""
    tz = run.tz
    ledger = Ledger(tz)
    start_equity = run.start_equity if run.start_equity is not None else 0.0
    fills = _fill_records(run)
    windows = run.session_windows()
    strategies = set(run.strategies) | {f.strategy_id for f in fills}
    last: dict[str, float] = {}
    notes: list[str] = []
    points: list[tuple[datetime, float]] = []
    in_market: list[tuple[datetime, bool]] = []
    traded = 0.0

    def equity() -> float:
        return start_equity + ledger.realized_pnl() + sum(_unrealized(ledger, last, strategies).values())

    events: list[tuple[datetime, int, object]] = [(f.ts, 1, f) for f in fills]
    events += [(close, 2, day) for day, (_open, close) in zip(run.sessions, windows, strict=True)]
    events.sort(key=lambda e: (e[0], e[1]))
    first = min([w[0] for w in windows] + [f.ts for f in fills], default=None)
    if first is not None:
        points.append((first, start_equity))
    for ts, kind, item in events:
        if kind == 1:
            assert isinstance(item, FillRecord)
            fill = item
            try:
                ledger.apply_fill(fill, fill.ts)
            except AllocationShortfall:
                held = ledger.allocation(fill.symbol, fill.strategy_id)
                missing = fill.qty - (held.qty if held else 0)
                notes.append(
                    f"{fill.execution_id}: {fill.strategy_id} sold {fill.qty} {fill.symbol} holding "
                    f"{fill.qty - missing}; the {missing} extra shares were booked as bought at the sale price"
                )
                ledger.apply_fill(
                    FillRecord(
                        f"{fill.execution_id}-adopted",
                        fill.order_id,
                        fill.strategy_id,
                        fill.symbol,
                        "BUY",
                        missing,
                        fill.price,
                        fill.ts,
                    ),
                    fill.ts,
                )
                ledger.apply_fill(fill, fill.ts)
            last[fill.symbol] = fill.price
            traded += abs(fill.qty * fill.price)
            in_market.append((ts, bool(ledger.real_qty())))
        else:
            assert isinstance(item, date)
            if marks is not None:
                for sym in ledger.real_qty():
                    price = marks(sym, item)
                    if price is not None and price > 0:
                        last[sym] = float(price)
        points.append((ts, equity()))
    curve = pd.Series([v for _, v in points], index=pd.to_datetime([t for t, _ in points], utc=True), dtype=float)
    daily_values = {day: _value_at(points, close) for day, (_o, close) in zip(run.sessions, windows, strict=True)}
    daily = pd.Series(daily_values, dtype=float)
    realized_by_day = {
        day: ledger.daily_realized(day)
        for day in sorted({ledger.trading_day_of(f.ts) for f in fills} | set(run.sessions))
    }
    open_positions = {sid: {s: a.qty for s, a in ledger.allocations_of(sid).items()} for sid in sorted(strategies)}
    return Book(
        curve=curve,
        daily=daily,
        start_equity=start_equity,
        realized={sid: ledger.realized_pnl(sid) for sid in sorted(strategies)},
        realized_by_day=realized_by_day,
        unrealized=_unrealized(ledger, last, strategies),
        open_positions={sid: pos for sid, pos in open_positions.items() if pos},
        in_market=pd.Series(
            [v for _, v in in_market], index=pd.to_datetime([t for t, _ in in_market], utc=True), dtype=bool
        ),
        traded_value=traded,
        notes=notes,
    )


def _value_at(points: list[tuple[datetime, float]], t: datetime) -> float:
    value = points[0][1] if points else 0.0
    for ts, v in points:
        if ts > t:
            break
        value = v
    return value
