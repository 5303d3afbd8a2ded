"""Locating and reading the KRX reference data (``../shared/data/krx``, see its README).

Minute files are decoded once into column files in the cache folder; a session's bars are read from them
day by day (``pread``, :class:`broker_core.paper.columns.NpyMatrix`), or the whole history memory-mapped
(:meth:`KrxData.minute_arrays`). The daily files are decoded once into numpy columns in the cache folder
(:func:`broker_core.paper.columns.cached_daily`) and indexed by ticker. pyarrow is imported only to decode
a file the cache does not hold yet. Everything is read-only and cached per instance (the daily tables per
process).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from broker_core.clock import KST
from broker_core.models import Bar
from broker_core.paper.columns import (
    DailyColumns,
    NpyMatrix,
    cached_daily,
    cached_mapping,
    keyed_file,
    save_npy,
)

if TYPE_CHECKING:
    import pyarrow as pa

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
        return self.rows(*self.day_range(day))

    def rows(self, lo: int, hi: int) -> MinuteArrays:
        """Bars ``lo:hi`` (views of these arrays)."""
        return MinuteArrays(
            self.ts[lo:hi],
            self.day[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
        )

    def bars(self, symbol: str) -> list[Bar]:
        """These rows as ``symbol``'s broker bars, starts in KST."""
        return [
            Bar(symbol, datetime.fromtimestamp(ts, KST), o, h, lo, c, v)
            for ts, o, h, lo, c, v in zip(
                self.ts.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                strict=True,
            )
        ]


def _epoch_seconds(column: pa.ChunkedArray) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    ns = pc.cast(column, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    return ns // 1_000_000_000


def _kst_days(seconds: np.ndarray) -> np.ndarray:
    return (seconds + _KST_OFFSET_S) // 86_400


def _read_minutes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A minute file decoded and sorted by time: ``ts, day, volume`` (int64 rows) and ``open, high, low,
    close`` (float64 rows), each row one contiguous column."""
    import pyarrow.parquet as pq

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
    return keyed_file(path, "krx-minute", ".i8.npy"), keyed_file(path, "krx-minute", ".f8.npy")


_save = save_npy


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
    days, starts = _day_index(ints_file, len(ints[1]), lambda: ints[1])
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


def _day_index(ints_file: Path, rows: int, day: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct days and where each starts (plus the end), from a small file beside the columns (computed
    from the ``day`` column of ``rows`` rows, read only when that file is missing)."""
    index_file = ints_file.with_name(ints_file.name.replace(".i8.npy", ".days.npy"))
    try:
        index = np.load(index_file)
        if index.ndim == 2 and index.shape[0] == 2 and index[1, -1] == rows:
            return index[0, :-1], index[1]
    except (OSError, ValueError):
        pass
    days, first = np.unique(np.asarray(day()), return_index=True)
    starts = np.append(first, rows)
    index = np.vstack([np.append(days, -1), starts])
    try:
        _save(index, index_file)
    except OSError:
        pass
    return days, starts


@dataclass(frozen=True, slots=True)
class _MinuteSource:
    """One ticker's minute bars read a day at a time: the day index in memory, the bars read from the column
    files when asked (page cache, not this process's memory), or sliced from arrays held in memory when the
    cache folder is not usable."""

    days: np.ndarray
    starts: np.ndarray
    ints: NpyMatrix | None = None
    prices: NpyMatrix | None = None
    held: MinuteArrays | None = None

    def day_range(self, day: date) -> tuple[int, int]:
        d = _day_number(day)
        pos = int(np.searchsorted(self.days, d, "left"))
        found = pos < len(self.days) and int(self.days[pos]) == d
        return int(self.starts[pos]), int(self.starts[pos + 1 if found else pos])

    def covers(self, day: date) -> bool:
        return len(self.days) > 0 and int(self.days[0]) <= _day_number(day) <= int(self.days[-1])

    def ts(self, lo: int, hi: int) -> np.ndarray:
        if self.held is not None:
            return self.held.ts[lo:hi]
        assert self.ints is not None
        return self.ints.read(0, lo, hi)

    def rows(self, lo: int, hi: int) -> MinuteArrays:
        """Bars ``lo:hi`` (of one day: the day index bounds them) as in-memory arrays."""
        if self.held is not None:
            return self.held.rows(lo, hi)
        assert self.ints is not None and self.prices is not None
        ts, day, volume = self.ints.read_rows((0, 1, 2), lo, hi)
        open_, high, low, close = self.prices.read_rows((0, 1, 2, 3), lo, hi)
        return MinuteArrays(ts=ts, day=day, open=open_, high=high, low=low, close=close, volume=volume)


def _open_columns(ints_file: Path, prices_file: Path) -> _MinuteSource | None:
    try:
        ints, prices = NpyMatrix.open(ints_file), NpyMatrix.open(prices_file)
        if ints.rows != 3 or prices.rows != 4 or ints.cols != prices.cols:
            return None
        days, starts = _day_index(ints_file, ints.cols, lambda: ints.read(1, 0, ints.cols))
    except (OSError, ValueError):
        return None
    return _MinuteSource(days, starts, ints, prices)


def _minute_source(path: Path) -> _MinuteSource:
    """The reader of ``path``'s cached columns, decoding them first when the cache folder lacks them."""
    ints_file, prices_file = _column_files(path)
    source = _open_columns(ints_file, prices_file)
    if source is None:
        held = _mapped_minutes(path)  # decodes and writes the columns (when the folder is usable)
        source = _open_columns(ints_file, prices_file)
        if source is None:
            assert held.days is not None and held.starts is not None
            source = _MinuteSource(held.days, held.starts, held=held)
    return source


class KrxData:
    """Read access to one KRX data directory (minute bars, daily bars, flows, sectors)."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self._minute: dict[str, MinuteArrays] = {}
        self._sources: dict[str, _MinuteSource] = {}
        self._sessions: dict[tuple[str, ...], list[date]] = {}
        self._tables: dict[str, DailyColumns] = {}
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

    def _source(self, symbol: str) -> _MinuteSource:
        source = self._sources.get(symbol)
        if source is None:
            source = self._sources[symbol] = _minute_source(self._minute_file(symbol))
        return source

    def sessions(self, symbols: list[str] | None = None) -> list[date]:
        """KST dates with minute bars for any of ``symbols`` (default: every minute file).

        Reads the day index of each file's columns (decoding a file the cache folder does not hold yet).
        """
        key = tuple(sorted(symbols if symbols is not None else self.minute_symbols()))
        cached = self._sessions.get(key)
        if cached is None:
            days: set[int] = set()
            for symbol in key:
                days.update(self._source(symbol).days.tolist())
            cached = [_EPOCH + timedelta(days=d) for d in sorted(days)]
            self._sessions[key] = cached
        return list(cached)

    def latest_session(self) -> date:
        sessions = self.sessions()
        if not sessions:
            raise DataNotFound(f"no minute bars under {self.data_dir / 'minute'}. {_SYNTHETIC_HINT}")
        return sessions[-1]

    def minute_arrays(self, symbol: str) -> MinuteArrays:
        """Every 1-minute bar of ``symbol`` as column arrays (loaded once, then cached; memory-mapped from the
        cache folder: the pages read count in this process's RSS — :meth:`minute_day` reads one day without)."""
        return self._arrays(symbol)

    def minute_day(self, symbol: str, day: date) -> MinuteArrays:
        """The 1-minute bars of ``symbol`` on KST date ``day`` as in-memory arrays (``minute_arrays(symbol)
        .session(day)``, read from the column files without mapping them)."""
        source = self._source(symbol)
        return source.rows(*source.day_range(day))

    def minute_covers(self, symbol: str, day: date) -> bool:
        """``day`` lies between the first and the last day of ``symbol``'s minute file
        (``minute_arrays(symbol).covers(day)``, from the day index alone)."""
        return self._source(symbol).covers(day)

    def minute_bars(
        self, symbol: str, day: date, start: datetime | None = None, end: datetime | None = None
    ) -> list[Bar]:
        """The 1-minute bars of ``symbol`` on KST date ``day`` (possibly fewer than 381, or none), only those
        starting in ``[start, end]`` when given (sliced on the arrays: no bar object is built for the rest)."""
        source = self._source(symbol)
        lo, hi = source.day_range(day)
        if start is not None or end is not None:
            stamps = source.ts(lo, hi)
            first = lo
            if start is not None:
                lo = first + int(np.searchsorted(stamps, start.timestamp(), "left"))
            if end is not None:
                hi = first + int(np.searchsorted(stamps, end.timestamp(), "right"))
        return source.rows(lo, max(lo, hi)).bars(symbol)

    # daily files

    def _table(self, filename: str, key: str = "ticker") -> DailyColumns:
        """``filename`` as numpy columns split by ``key``, rows sorted by date (decoded once into the cache
        folder; shared by every reader of the same file in this process)."""
        table = self._tables.get(filename)
        if table is None:
            table = self._tables[filename] = cached_daily(self._file(filename), key)
        return table

    def _daily(self, filename: str, key: str, symbol: str, start: date, end: date) -> list[Bar]:
        table = self._table(filename, key)
        if table.rows(symbol) is None:
            return []
        lo, hi = table.date_range(symbol, _day_number(start), _day_number(end))
        return [
            Bar(
                symbol,
                datetime.combine(_EPOCH + timedelta(days=d), datetime.min.time(), KST),
                o,
                h,
                lo_,
                c,
                int(v),
                interval="1d",
            )
            for d, o, h, lo_, c, v in zip(
                table.day[lo:hi].tolist(),
                table.values("open", lo, hi),
                table.values("high", lo, hi),
                table.values("low", lo, hi),
                table.values("close", lo, hi),
                table.values("volume", lo, hi),
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
        return sorted(self._table("daily_ohlcv.parquet").keys)

    def prev_close(self, symbol: str, day: date) -> float | None:
        """Close of the last daily row before ``day``; else the last minute close before ``day``."""
        table = self._table("daily_ohlcv.parquet")
        span = table.rows(symbol)
        if span is not None:
            first, last = span
            i = first + int(np.searchsorted(table.day[first:last], _day_number(day), "left"))
            if i > first:
                return float(table.values("close", i - 1, i)[0])
        if not (self.data_dir / "minute" / f"{symbol}.parquet").is_file():
            return None
        source = self._source(symbol)
        lo, _ = source.day_range(day)
        return float(source.rows(lo - 1, lo).close[0]) if lo > 0 else None

    def sector_map(self) -> dict[str, str]:
        if self._sectors is None:
            self._sectors = cached_mapping(self._file("sector_map.parquet"), "ticker", "sector")
        return dict(self._sectors)

    def investor_flow(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        """Rows ``{"date", "foreign_net", "inst_net"}`` (net shares) with ``start <= date <= end``."""
        table = self._table("daily_flow.parquet")
        if table.rows(symbol) is None:
            return []
        lo, hi = table.date_range(symbol, _day_number(start), _day_number(end))
        return [
            {"date": _EPOCH + timedelta(days=d), "foreign_net": _int_or_none(f), "inst_net": _int_or_none(i)}
            for d, f, i in zip(
                table.day[lo:hi].tolist(),
                table.values("foreign_net", lo, hi),
                table.values("inst_net", lo, hi),
                strict=True,
            )
        ]


def _int_or_none(value: float | None) -> int | None:
    return None if value is None or value != value else int(value)
