"""Daily panels (date × symbol) from the US reference data, and the ATR at entry of M4.

The reference data lives outside the repository (``../shared/data/us`` or ``$TRADER_US_DATA_DIR``,
:func:`broker_core.paper.us_data.resolve_us_data_dir`); it is read, never copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from broker_core.paper.us_data import DAILY_FILE, resolve_us_data_dir
from strategies.rotation.config import BENCHMARK, DEFENSIVE, UNIVERSE
from strategies.rotation.history import DayLike, rows_upto
from strategies.rotation.models import Holding
from strategies.sdk.indicators import atr

NEW_YORK = ZoneInfo("America/New_York")
ROTATION_SYMBOLS: tuple[str, ...] = (*UNIVERSE, DEFENSIVE, BENCHMARK)


@dataclass(frozen=True, slots=True)
class DailyPanels:
    """Adjusted closes (the models' input) and the as-traded high/low/close (ATR), date × symbol."""

    adj_close: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame


def panels_from_rows(rows: pd.DataFrame) -> DailyPanels:
    """Pivot long rows (``symbol``, ``date``, ``high``, ``low``, ``close``, ``adj_close``) into panels."""
    frame = rows.assign(date=pd.to_datetime(rows["date"]))

    def pivot(col: str) -> pd.DataFrame:
        p = frame.pivot(index="date", columns="symbol", values=col).sort_index()
        p.columns.name = None
        p.index.name = None
        return p.astype(float)

    return DailyPanels(pivot("adj_close"), pivot("high"), pivot("low"), pivot("close"))


def load_panels(symbols: Iterable[str] = ROTATION_SYMBOLS, data_dir: str | Path | None = None) -> DailyPanels:
    """The daily panels of ``symbols`` from ``daily_ohlcv.parquet``."""
    wanted = list(dict.fromkeys(symbols))
    path = resolve_us_data_dir(data_dir) / DAILY_FILE
    rows = pd.read_parquet(
        path, columns=["symbol", "date", "high", "low", "close", "adj_close"], filters=[("symbol", "in", wanted)]
    )
    return panels_from_rows(rows)


def entry_session(entry_ts: datetime) -> pd.Timestamp:
    """The New York session date of an allocation's ``entry_ts`` (naive timestamps are taken as UTC)."""
    ts = pd.Timestamp(entry_ts)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert(NEW_YORK).tz_localize(None).normalize()


def atr_at_entry(
    panels: DailyPanels, symbol: str, entry_day: DayLike, period: int = 12, lookback: int = 120
) -> float | None:
    """ATR(``period``) (Wilder, :func:`strategies.sdk.indicators.atr`) over the ``lookback`` bars dated
    before the entry session: what was known when the entry was made, so recomputing it after a restart
    gives the same number. None with fewer than ``period`` bars."""
    if symbol not in panels.close.columns:
        return None
    n = rows_upto(panels.close, pd.Timestamp(entry_day) - pd.Timedelta(days=1))
    start = max(0, n - lookback)
    bars = pd.DataFrame(
        {
            "h": panels.high[symbol].iloc[start:n],
            "l": panels.low[symbol].iloc[start:n],
            "c": panels.close[symbol].iloc[start:n],
        }
    ).dropna()
    return atr(bars.itertuples(index=False, name=None), period)


def holding_from_allocation(
    panels: DailyPanels, symbol: str, cost_basis: float, entry_ts: datetime, atr_period: int = 12
) -> Holding:
    """M4's input from an OMS allocation: entry price = cost basis, entry session of ``entry_ts``, and the
    ATR at entry recomputed from the daily bars (the same after a restart)."""
    day = entry_session(entry_ts)
    return Holding(symbol, float(cost_basis), day.date(), atr_at_entry(panels, symbol, day, atr_period))
