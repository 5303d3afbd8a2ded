"""Reading a closes panel (DataFrame: DatetimeIndex of sessions × symbol columns) up to a decision day.

Everything the models see passes through :func:`history`, which never returns a row dated after the
decision day: that is the whole no-look-ahead guarantee. The live wiring passes only completed sessions
(at 10:00 the decision day has no close yet); a backtest deciding at the close includes the day's close.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TypeAlias

import numpy as np
import pandas as pd

from broker_core.calendars import NYSE, trading_days

DayLike: TypeAlias = date | datetime | pd.Timestamp | str


def as_day(day: DayLike) -> pd.Timestamp:
    """The session date as a midnight Timestamp (timezone dropped, time of day dropped)."""
    ts = pd.Timestamp(day)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("America/New_York").tz_localize(None)
    return ts.normalize()


def rows_upto(closes: pd.DataFrame, day: DayLike) -> int:
    """How many rows of ``closes`` are dated on or before ``day`` (the index must be sorted)."""
    index = closes.index
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("closes must have a DatetimeIndex of sessions")
    if not index.is_monotonic_increasing:
        raise ValueError("closes index must be sorted ascending")
    return int(index.searchsorted(as_day(day), side="right"))


def history(closes: pd.DataFrame, symbol: str, day: DayLike) -> np.ndarray:
    """``symbol``'s closes dated on or before ``day``, missing values removed (empty if unknown)."""
    if symbol not in closes.columns:
        return np.empty(0, dtype=float)
    values = closes[symbol].to_numpy(dtype=float)[: rows_upto(closes, day)]
    return values[~np.isnan(values)]


def sessions_between(start: DayLike, end: DayLike) -> int:
    """XNYS sessions after ``start`` up to and including ``end`` (0 when ``end`` ≤ ``start``)."""
    s, e = as_day(start), as_day(end)
    if e <= s:
        return 0
    return len(trading_days((s + pd.Timedelta(days=1)).date(), e.date(), NYSE))
