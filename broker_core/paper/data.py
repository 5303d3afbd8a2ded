"""Locating and reading the KRX reference data (``../shared/data/krx``, see its README).

Minute files are decoded once into column files in the cache folder and memory-mapped per ticker, then
sliced per session; the daily files are loaded once and indexed by ticker. Everything is read-only and
cached per instance.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from broker_core.cache import cache_dir
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
    days: np.ndarray | None = None
    """The distinct days of ``day`` in order, and ``starts`` where each begins (one more: the end): with them
    a day is found without reading the ``day`` column (of a memory-mapped file)."""
    starts: np.ndarray | None = None

    def day_range(self, day: date) -> tuple[int, int]:
        d = _day_number(day)
        if self.days is not None and self.starts is not None:
            pos = int(np.searchsorted(self.days, d, "left"))
            found = pos < len(self.days) and int(self.days[pos]) == d
            return int(self.starts[pos]), int(self.starts[pos + 1 if found else pos])
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


def _read_minutes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A minute file decoded and sorted by time: ``ts, day, volume`` (int64 rows) and ``open, high, low,
    close`` (float64 rows), each row one contiguous column."""
    table = pq.read_table(path)
    ts = _epoch_seconds(table.column("timestamp"))
    order = np.argsort(ts, kind="stable")
    ints = np.empty((3, len(ts)), dtype=np.int64)
    ints[0] = ts[order]
    ints[1] = _kst_days(ints[0])
    ints[2] = table.column("volume").to_numpy()[order]
    prices = np.empty((4, len(ts)), dtype=np.float64)
    for row, name in enumerate(("open", "high", "low", "close")):
        prices[row] = table.column(name).to_numpy()[order]
    return ints, prices


def _column_files(path: Path) -> tuple[Path, Path]:
    """Where the decoded columns of ``path`` are kept: named by the file's location, size and mtime, so an
    edited or replaced data file gets new columns."""
    st = path.stat()
    where = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    stem = cache_dir() / "krx-minute" / f"{path.stem}-{where}-{st.st_size}-{st.st_mtime_ns}"
    return stem.with_suffix(".i8.npy"), stem.with_suffix(".f8.npy")


def _save(array: np.ndarray, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, array)
    os.replace(tmp, target)


def _mapped_minutes(path: Path) -> MinuteArrays:
    """The minute columns of ``path``, memory-mapped from the cache folder (decoded from the parquet file once,
    on first use): a process pages in only the days it reads (a replayed session, the history a strategy asks
    for) instead of holding every ticker's whole history (~4 MB each). Without a usable cache folder the
    columns are held in memory, as before."""
    ints_file, prices_file = _column_files(path)
    try:
        ints, prices = np.load(ints_file, mmap_mode="r"), np.load(prices_file, mmap_mode="r")
        if ints.shape[0] != 3 or prices.shape[0] != 4 or ints.shape[1] != prices.shape[1]:
            raise ValueError("not the column layout")
    except (OSError, ValueError):
        ints, prices = _read_minutes(path)
        try:
            ints_file.parent.mkdir(parents=True, exist_ok=True)
            _save(prices, prices_file)
            _save(ints, ints_file)
            ints, prices = np.load(ints_file, mmap_mode="r"), np.load(prices_file, mmap_mode="r")
        except OSError:
            pass
    days, starts = _day_index(ints_file, ints[1])
    return MinuteArrays(
        ts=ints[0],
        day=ints[1],
        open=prices[0],
        high=prices[1],
        low=prices[2],
        close=prices[3],
        volume=ints[2],
        days=days,
        starts=starts,
    )


def _day_index(ints_file: Path, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct days and where each starts (plus the end), from a small file beside the columns."""
    index_file = ints_file.with_name(ints_file.name.replace(".i8.npy", ".days.npy"))
    try:
        index = np.load(index_file)
        if index.ndim == 2 and index.shape[0] == 2 and index[1, -1] == len(day):
            return index[0, :-1], index[1]
    except (OSError, ValueError):
        pass
    days, first = np.unique(np.asarray(day), return_index=True)
    starts = np.append(first, len(day))
    index = np.vstack([np.append(days, -1), starts])
    try:
        _save(index, index_file)
    except OSError:
        pass
    return days, starts


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
            arrays = self._minute[symbol] = _mapped_minutes(self._minute_file(symbol))
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
