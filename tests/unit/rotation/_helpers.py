"""Builders shared by the rotation tests: synthetic close panels on real XNYS sessions, and the real data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from broker_core.calendars import NYSE, trading_days
from strategies.rotation.data import DailyPanels, load_panels


def sessions(n: int, end: str = "2024-06-28") -> pd.DatetimeIndex:
    """The last ``n`` XNYS sessions up to ``end``."""
    days = trading_days(date(2015, 1, 1), date.fromisoformat(end), NYSE)
    return pd.DatetimeIndex([pd.Timestamp(d) for d in days[-n:]])


def with_momentum(m: float, period: int, n: int, base: float = 100.0) -> np.ndarray:
    """``n`` closes, flat at ``base`` then moving geometrically so that last / close[-1-period] = 1 + m."""
    values = np.full(n, base)
    values[n - period - 1 :] = base * (1 + m) ** (np.arange(period + 1) / period)
    return values


def panel(columns: Mapping[str, np.ndarray], n: int, end: str = "2024-06-28") -> pd.DataFrame:
    """A closes panel of ``n`` sessions; shorter columns are aligned to the end (NaN before)."""
    frame = pd.DataFrame(index=sessions(n, end))
    for sym, values in columns.items():
        col = np.full(n, np.nan)
        col[n - len(values) :] = values
        frame[sym] = col
    return frame


@lru_cache(maxsize=1)
def real_panels() -> DailyPanels:
    """The reference data (../shared/data/us), read once per test process."""
    return load_panels()


def real_closes() -> pd.DataFrame:
    return real_panels().adj_close
