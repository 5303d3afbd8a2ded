"""Locating and reading the KRX reference data (``../shared/data/krx``, see its README).

Minute files are loaded once per ticker into column arrays and sliced per session; the daily
files are loaded once and indexed by ticker. Everything is read-only and cached per instance.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from broker_core.clock import KST
from broker_core.models import Bar

ENV_VAR = "TRADER_DATA_DIR"
_KST_OFFSET_S = 9 * 3600
_EPOCH = date(1970, 1, 1)


class DataNotFound(FileNotFoundError):
    """The KRX reference data (or one of its files) is not where it was looked for."""


_SYNTHETIC_HINT = (
    "The synthetic feed (broker_core.paper.synthetic.SyntheticFeed) needs no data; "
    f"or set {ENV_VAR} to the directory holding minute/ and daily_ohlcv.parquet."
)


def _default_candidates() -> list[Path]:
    project_root = Path(__file__).resolve().parents[2]
    return [project_root.parent / "shared" / "data" / "krx", Path.cwd().parent / "shared" / "data" / "krx"]


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """The KRX data directory: ``explicit``, else ``$TRADER_DATA_DIR``, else ``../shared/data/krx``
    next to the project root, else next to the working directory.

    A directory named explicitly (argument or environment) must exist: there is no silent fallback.
    """
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
    raise DataNotFound(f"KRX data directory not found ({source}); tried: {listing}. {_SYNTHETIC_HINT}")


def _day_number(d: date) -> int:
    return (d - _EPOCH).days


@dataclass(frozen=True, slots=True)
class MinuteArrays:
    """One ticker's 1-minute bars as column arrays, sorted by time (read-only)."""

    ts: np.ndarray
    """Bar start, UNIX seconds."""
    day: np.ndarray
    """KST calendar day of the bar, days since 1970-01-01."""
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def day_range(self, day: date) -> tuple[int, int]:
        d = _day_number(day)
        return int(np.searchsorted(self.day, d, "left")), int(np.searchsorted(self.day, d, "right"))

    def covers(self, day: date) -> bool:
        """``day`` lies between the first and the last day of the file (the ticker was listed then)."""
        return len(self.day) > 0 and int(self.day[0]) <= _day_number(day) <= int(self.day[-1])

    def session(self, day: date) -> MinuteArrays:
        """The bars of KST date ``day`` only (views of these arrays)."""
        lo, hi = self.day_range(day)
        return MinuteArrays(
            self.ts[lo:hi],
            self.day[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
        )


def _epoch_seconds(column: pa.ChunkedArray) -> np.ndarray:
    ns = pc.cast(column, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    return ns // 1_000_000_000


def _kst_days(seconds: np.ndarray) -> np.ndarray:
    return (seconds + _KST_OFFSET_S) // 86_400


class KrxData:
    """Read access to one KRX data directory (minute bars, daily bars, flows, sectors)."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self._minute: dict[str, MinuteArrays] = {}
        self._sessions: dict[tuple[str, ...], list[date]] = {}
        self._tables: dict[str, dict[str, dict[str, list[Any]]]] = {}
        self._sectors: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"KrxData({str(self.data_dir)!r})"

    def _file(self, relative: str) -> Path:
        path = self.data_dir / relative
        if not path.is_file():
            raise DataNotFound(f"{path} is missing from the KRX data directory {self.data_dir}. {_SYNTHETIC_HINT}")
        return path

    # minute data

    def minute_symbols(self) -> list[str]:
        minute_dir = self.data_dir / "minute"
        if not minute_dir.is_dir():
            raise DataNotFound(f"{minute_dir} is missing (minute bars). {_SYNTHETIC_HINT}")
        return sorted(p.stem for p in minute_dir.glob("*.parquet"))

    def _minute_file(self, symbol: str) -> Path:
        return self._file(f"minute/{symbol}.parquet")

    def _arrays(self, symbol: str) -> MinuteArrays:
        arrays = self._minute.get(symbol)
        if arrays is None:
            table = pq.read_table(self._minute_file(symbol))
            ts = _epoch_seconds(table.column("timestamp"))
            order = np.argsort(ts, kind="stable")
            col = {name: table.column(name).to_numpy()[order] for name in ("open", "high", "low", "close", "volume")}
            ts = ts[order]
            arrays = MinuteArrays(
                ts=ts,
                day=_kst_days(ts),
                open=col["open"].astype(float),
                high=col["high"].astype(float),
                low=col["low"].astype(float),
                close=col["close"].astype(float),
                volume=col["volume"].astype(np.int64),
            )
            self._minute[symbol] = arrays
        return arrays

    def sessions(self, symbols: list[str] | None = None) -> list[date]:
        """KST dates with minute bars for any of ``symbols`` (default: every minute file).

        Reads only the timestamp column of files not loaded yet.
        """
        key = tuple(sorted(symbols if symbols is not None else self.minute_symbols()))
        cached = self._sessions.get(key)
        if cached is None:
            days: set[int] = set()
            for symbol in key:
                if symbol in self._minute:
                    days.update(np.unique(self._minute[symbol].day).tolist())
                else:
                    table = pq.read_table(self._minute_file(symbol), columns=["timestamp"])
                    days.update(np.unique(_kst_days(_epoch_seconds(table.column("timestamp")))).tolist())
            cached = [_EPOCH + timedelta(days=d) for d in sorted(days)]
            self._sessions[key] = cached
        return list(cached)

    def latest_session(self) -> date:
        sessions = self.sessions()
        if not sessions:
            raise DataNotFound(f"no minute bars under {self.data_dir / 'minute'}. {_SYNTHETIC_HINT}")
        return sessions[-1]

    def minute_arrays(self, symbol: str) -> MinuteArrays:
        """Every 1-minute bar of ``symbol`` as column arrays (loaded once, then cached)."""
        return self._arrays(symbol)

    def minute_bars(
        self, symbol: str, day: date, start: datetime | None = None, end: datetime | None = None
    ) -> list[Bar]:
        """The 1-minute bars of ``symbol`` on KST date ``day`` (possibly fewer than 381, or none), only those
        starting in ``[start, end]`` when given (sliced on the arrays: no bar object is built for the rest)."""
        a = self._arrays(symbol)
        lo, hi = a.day_range(day)
        if start is not None:
            lo = max(lo, int(np.searchsorted(a.ts, start.timestamp(), "left")))
        if end is not None:
            hi = min(hi, int(np.searchsorted(a.ts, end.timestamp(), "right")))
        return [
            Bar(symbol, datetime.fromtimestamp(ts, KST), o, h, lo_, c, v)
            for ts, o, h, lo_, c, v in zip(
                a.ts[lo:hi].tolist(),
                a.open[lo:hi].tolist(),
                a.high[lo:hi].tolist(),
                a.low[lo:hi].tolist(),
                a.close[lo:hi].tolist(),
                a.volume[lo:hi].tolist(),
                strict=True,
            )
        ]

    # daily files

    def _by_key(self, filename: str, key: str = "ticker") -> dict[str, dict[str, list[Any]]]:
        """``filename`` split by ``key`` into column lists sorted by date (ISO strings)."""
        grouped = self._tables.get(filename)
        if grouped is None:
            table = pq.read_table(self._file(filename)).sort_by([(key, "ascending"), ("date", "ascending")])
            columns = {name: table.column(name).to_pylist() for name in table.column_names}
            keys = columns[key]
            grouped = {}
            start = 0
            for i in range(1, len(keys) + 1):
                if i == len(keys) or keys[i] != keys[start]:
                    grouped[keys[start]] = {n: v[start:i] for n, v in columns.items() if n != key}
                    start = i
            self._tables[filename] = grouped
        return grouped

    @staticmethod
    def _date_slice(dates: list[str], start: date, end: date) -> slice:
        return slice(bisect.bisect_left(dates, start.isoformat()), bisect.bisect_right(dates, end.isoformat()))

    def _daily(self, filename: str, key: str, symbol: str, start: date, end: date) -> list[Bar]:
        rows = self._by_key(filename, key).get(symbol)
        if rows is None:
            return []
        s = self._date_slice(rows["date"], start, end)
        return [
            Bar(
                symbol,
                datetime.combine(date.fromisoformat(d), datetime.min.time(), KST),
                o,
                h,
                lo,
                c,
                int(v),
                interval="1d",
            )
            for d, o, h, lo, c, v in zip(
                rows["date"][s],
                rows["open"][s],
                rows["high"][s],
                rows["low"][s],
                rows["close"][s],
                rows["volume"][s],
                strict=True,
            )
        ]

    def daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        """Daily bars from ``daily_ohlcv.parquet`` with ``start <= date <= end`` (ts = 00:00 KST)."""
        return self._daily("daily_ohlcv.parquet", "ticker", symbol, start, end)

    def index_bars(self, index_code: str, start: date, end: date) -> list[Bar]:
        """Daily bars of an index (``KOSPI``, ``KOSDAQ``) from ``index_ohlcv.parquet``."""
        return self._daily("index_ohlcv.parquet", "index_code", index_code, start, end)

    def daily_symbols(self) -> list[str]:
        return sorted(self._by_key("daily_ohlcv.parquet"))

    def prev_close(self, symbol: str, day: date) -> float | None:
        """Close of the last daily row before ``day``; else the last minute close before ``day``."""
        rows = self._by_key("daily_ohlcv.parquet").get(symbol)
        if rows is not None:
            i = bisect.bisect_left(rows["date"], day.isoformat())
            if i > 0:
                return float(rows["close"][i - 1])
        if not (self.data_dir / "minute" / f"{symbol}.parquet").is_file():
            return None
        a = self._arrays(symbol)
        lo, _ = a.day_range(day)
        return float(a.close[lo - 1]) if lo > 0 else None

    def sector_map(self) -> dict[str, str]:
        if self._sectors is None:
            table = pq.read_table(self._file("sector_map.parquet"), columns=["ticker", "sector"])
            self._sectors = dict(
                zip(table.column("ticker").to_pylist(), table.column("sector").to_pylist(), strict=True)
            )
        return dict(self._sectors)

    def investor_flow(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        """Rows ``{"date", "foreign_net", "inst_net"}`` (net shares) with ``start <= date <= end``."""
        rows = self._by_key("daily_flow.parquet").get(symbol)
        if rows is None:
            return []
        s = self._date_slice(rows["date"], start, end)
        return [
            {"date": date.fromisoformat(d), "foreign_net": _int_or_none(f), "inst_net": _int_or_none(i)}
            for d, f, i in zip(rows["date"][s], rows["foreign_net"][s], rows["inst_net"][s], strict=True)
        ]


def _int_or_none(value: float | None) -> int | None:
    return None if value is None or value != value else int(value)
