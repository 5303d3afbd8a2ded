"""Daily bars as wide frames (index = session date, one column per symbol) for swing-ML.

The factors, labels and regime all work on a :class:`Panel`. Prices are *adjusted*: ``close`` is the
vendor's ``adj_close`` and open/high/low are scaled by the same factor ``adj_close / close`` so that
ATR and returns are free of dividend (and split) gaps; ``raw_close`` keeps the traded close (the
universe's $5 price floor and dollar volume use it). Volume is as delivered.

:func:`load_panel` reads the US reference data through :class:`broker_core.paper.us_data.UsData`
(``../shared/data/us`` or ``$TRADER_US_DATA_DIR``); the data is never copied. Live, the lead builds a
Panel from the OMS proxy's daily bars with :meth:`Panel.from_long`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from broker_core.paper.us_data import UsData, from_day_number

BENCHMARK = "SPY"
SECTOR_ETFS: tuple[str, ...] = ("XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLRE", "XLU", "XLV", "XLY")
"""The 11 SPDR sector ETFs: the regime's sector strength and the stocks' sector factor."""


@dataclass(frozen=True)
class Panel:
    """Wide daily frames aligned on one DatetimeIndex (session dates) and one column set."""

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    """Adjusted close (``adj_close``): returns and factors use this."""
    volume: pd.DataFrame
    raw_close: pd.DataFrame

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.close.index)

    @property
    def symbols(self) -> list[str]:
        return [str(c) for c in self.close.columns]

    def until(self, day: date | pd.Timestamp) -> Panel:
        """Rows with date ≤ ``day`` (what was known at that day's close)."""
        ts = pd.Timestamp(day)
        return self._map(lambda f: f.loc[f.index <= ts])

    def between(self, start: date | pd.Timestamp, end: date | pd.Timestamp) -> Panel:
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        return self._map(lambda f: f.loc[(f.index >= lo) & (f.index <= hi)])

    def select(self, symbols: Iterable[str]) -> Panel:
        cols = [s for s in symbols if s in self.close.columns]
        return self._map(lambda f: f[cols])

    def _map(self, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Panel:
        return Panel(*(fn(x) for x in (self.open, self.high, self.low, self.close, self.volume, self.raw_close)))

    @classmethod
    def from_long(cls, rows: pd.DataFrame) -> Panel:
        """From long rows ``symbol, date, open, high, low, close, adj_close, volume`` (``adj_close``
        optional: defaults to ``close``)."""
        df = rows.copy()
        df["date"] = pd.to_datetime(df["date"])
        if "adj_close" not in df.columns:
            df["adj_close"] = df["close"]
        factor = (df["adj_close"] / df["close"]).where(df["close"] > 0)

        def wide(values: pd.Series) -> pd.DataFrame:
            out = pd.DataFrame({"date": df["date"], "symbol": df["symbol"], "v": values.astype(float)})
            return out.pivot(index="date", columns="symbol", values="v").sort_index()

        close = wide(df["adj_close"])
        frames = [wide(df["open"] * factor), wide(df["high"] * factor), wide(df["low"] * factor), close]
        frames += [wide(df["volume"]), wide(df["close"])]
        cols = sorted(close.columns)
        frames = [f.reindex(index=close.index, columns=cols) for f in frames]
        for f in frames:
            f.index.name, f.columns.name = "date", None
        return cls(*frames)


def load_panel(
    symbols: Iterable[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    data: UsData | None = None,
) -> Panel:
    """The reference data's daily bars of ``symbols`` (default all) with ``start ≤ date ≤ end``."""
    src = data if data is not None else UsData()
    wanted = list(symbols) if symbols is not None else src.symbols()
    parts = []
    for sym in wanted:
        a = src.arrays(sym)
        part = pd.DataFrame(
            {
                "date": [from_day_number(d) for d in a.day.tolist()],
                "open": a.open,
                "high": a.high,
                "low": a.low,
                "close": a.close,
                "adj_close": a.adj_close,
                "volume": a.volume.astype(float),
            }
        )
        part["symbol"] = sym
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    rows["date"] = pd.to_datetime(rows["date"])
    if start is not None:
        rows = rows[rows["date"] >= pd.Timestamp(start)]
    if end is not None:
        rows = rows[rows["date"] <= pd.Timestamp(end)]
    return Panel.from_long(rows)


def load_sector_map(data: UsData | None = None) -> dict[str, str]:
    """Symbol → SPDR sector ETF (each ETF maps to itself)."""
    return (data if data is not None else UsData()).sector_map()
