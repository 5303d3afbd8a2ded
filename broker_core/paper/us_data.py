"""Locating and reading the US reference data (``../shared/data/us``, see its README).

``daily_ohlcv.parquet`` holds daily bars of US large caps and ETFs (prices in USD, dates are New York
trading days; stock OHLC as traded, ETF rows dividend-adjusted); ``sector_map.parquet`` maps each
symbol to its SPDR sector ETF. There are no intraday bars: ``us_daily.py`` derives them. The files are
loaded once into per-symbol column arrays, read-only; they are decoded from parquet once into the cache
folder (:func:`broker_core.paper.columns.cached_daily`), so a process that finds them there needs no pyarrow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from broker_core.clock import NEW_YORK
from broker_core.models import Bar
from broker_core.paper.columns import cached_daily, cached_mapping
from broker_core.paper.data import DataNotFound

ENV_VAR = "TRADER_US_DATA_DIR"
DAILY_FILE = "daily_ohlcv.parquet"
SECTOR_FILE = "sector_map.parquet"
_EPOCH = date(1970, 1, 1)


class UsDataNotFound(DataNotFound):
    """The US reference data (or one of its files) is not where it was looked for."""


def _default_candidates() -> list[Path]:
    project_root = Path(__file__).resolve().parents[2]
    return [project_root.parent / "shared" / "data" / "us", Path.cwd().parent / "shared" / "data" / "us"]


def resolve_us_data_dir(explicit: str | Path | None = None) -> Path:
    """The US data directory: ``explicit``, else ``$TRADER_US_DATA_DIR``, else ``../shared/data/us`` next
    to the project root or the working directory. A directory named explicitly must exist."""
    if explicit is not None:
        tried, source = [Path(explicit)], "argument"
    elif os.environ.get(ENV_VAR):
        tried, source = [Path(os.environ[ENV_VAR])], f"${ENV_VAR}"
    else:
        tried, source = list(dict.fromkeys(_default_candidates())), "default locations"
    for path in tried:
        if path.is_dir():
            return path.resolve()
    listing = ", ".join(str(p) for p in tried)
    raise UsDataNotFound(f"US data directory not found ({source}); tried: {listing}. Set {ENV_VAR}.")


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def from_day_number(n: int) -> date:
    return _EPOCH + timedelta(days=int(n))


@dataclass(frozen=True, slots=True)
class DailyArrays:
    """One symbol's daily rows as column arrays sorted by date (read-only)."""

    day: np.ndarray
    """Days since 1970-01-01."""
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    adj_close: np.ndarray
    volume: np.ndarray

    def index_of(self, d: date) -> int | None:
        n = day_number(d)
        i = int(np.searchsorted(self.day, n))
        return i if i < len(self.day) and int(self.day[i]) == n else None

    def __len__(self) -> int:
        return len(self.day)


@dataclass(frozen=True, slots=True)
class DailyRow:
    symbol: str
    day: date
    open: float
    high: float
    low: float
    close: float
    adj_close: float
    volume: int


class UsData:
    """Read access to one US data directory."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = resolve_us_data_dir(data_dir)
        self._daily: dict[str, DailyArrays] | None = None
        self._sessions: list[date] | None = None
        self._by_day: dict[int, list[str]] | None = None
        self._sectors: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"UsData({str(self.data_dir)!r})"

    def _file(self, name: str) -> Path:
        path = self.data_dir / name
        if not path.is_file():
            raise UsDataNotFound(f"{path} is missing from the US data directory {self.data_dir}")
        return path

    def _load(self) -> dict[str, DailyArrays]:
        if self._daily is None:
            table = cached_daily(self._file(DAILY_FILE), "symbol")
            cols = {n: table.columns[n].astype(float) for n in ("open", "high", "low", "close", "adj_close")}
            volume = table.columns["volume"].astype(np.int64)
            out: dict[str, DailyArrays] = {}
            for symbol, (lo, hi) in table.keys.items():
                out[symbol] = DailyArrays(
                    table.day[lo:hi],
                    cols["open"][lo:hi],
                    cols["high"][lo:hi],
                    cols["low"][lo:hi],
                    cols["close"][lo:hi],
                    cols["adj_close"][lo:hi],
                    volume[lo:hi],
                )
            self._daily = out
        return self._daily

    def symbols(self) -> list[str]:
        return sorted(self._load())

    def arrays(self, symbol: str) -> DailyArrays:
        data = self._load()
        if symbol not in data:
            raise KeyError(f"{symbol!r} is not in {self.data_dir / DAILY_FILE}")
        return data[symbol]

    def sessions(self) -> list[date]:
        """Every date with a row for any symbol, ascending."""
        if self._sessions is None:
            days = np.unique(np.concatenate([a.day for a in self._load().values()]))
            self._sessions = [from_day_number(d) for d in days.tolist()]
        return list(self._sessions)

    def symbols_on(self, day: date) -> list[str]:
        """Symbols with a row on ``day`` (sorted)."""
        if self._by_day is None:
            by_day: dict[int, list[str]] = {}
            for symbol, a in sorted(self._load().items()):
                for d in a.day.tolist():
                    by_day.setdefault(d, []).append(symbol)
            self._by_day = by_day
        return list(self._by_day.get(day_number(day), []))

    def row(self, symbol: str, day: date) -> DailyRow | None:
        a = self._load().get(symbol)
        i = a.index_of(day) if a is not None else None
        if a is None or i is None:
            return None
        return DailyRow(
            symbol,
            day,
            float(a.open[i]),
            float(a.high[i]),
            float(a.low[i]),
            float(a.close[i]),
            float(a.adj_close[i]),
            int(a.volume[i]),
        )

    def prev_close(self, symbol: str, day: date) -> float | None:
        """Close of the last row before ``day``."""
        a = self._load().get(symbol)
        if a is None:
            return None
        i = int(np.searchsorted(a.day, day_number(day)))
        return float(a.close[i - 1]) if i > 0 else None

    def daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        """Daily bars with ``start <= date <= end`` (ts = 00:00 New York of the date; interval ``1d``;
        ``extra["adj_close"]``)."""
        a = self._load().get(symbol)
        if a is None:
            return []
        lo = int(np.searchsorted(a.day, day_number(start), "left"))
        hi = int(np.searchsorted(a.day, day_number(end), "right"))
        return [
            Bar(
                symbol,
                datetime.combine(from_day_number(d), datetime.min.time(), NEW_YORK),
                o,
                h,
                lo_,
                c,
                int(v),
                interval="1d",
                extra={"adj_close": adj},
            )
            for d, o, h, lo_, c, adj, v in zip(
                a.day[lo:hi].tolist(),
                a.open[lo:hi].tolist(),
                a.high[lo:hi].tolist(),
                a.low[lo:hi].tolist(),
                a.close[lo:hi].tolist(),
                a.adj_close[lo:hi].tolist(),
                a.volume[lo:hi].tolist(),
                strict=True,
            )
        ]

    def sector_map(self) -> dict[str, str]:
        """Symbol → its SPDR sector ETF (each ETF maps to itself)."""
        if self._sectors is None:
            self._sectors = cached_mapping(self._file(SECTOR_FILE), "symbol", "sector_etf")
        return dict(self._sectors)


__all__ = ["ENV_VAR", "DailyArrays", "DailyRow", "UsData", "UsDataNotFound", "resolve_us_data_dir"]
