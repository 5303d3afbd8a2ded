"""Column files in the cache folder (:mod:`broker_core.cache`), decoded once from the parquet reference data.

Reading a parquet file needs pyarrow (~70 MB mapped, ~0.2 s to import) and turns a daily table into Python
lists (tens of MB); a process that only *reads* the data keeps numpy columns instead:

- :class:`NpyMatrix`: a 2-D ``.npy`` file read row slice by row slice with ``pread``. Unlike a memory map,
  the pages read stay in the page cache and out of the process's RSS (the kernel maps whole large folios
  around a touched page: a day of one ticker mapped ~1.5 MB).
- :class:`DailyColumns`: a daily table split by key (ticker, index code, symbol) into rows sorted by date, kept
  as one ``.npz`` file (keys, where each key's rows start, day numbers, value columns, null masks).

Every cache file is named by its source's location, size and mtime (:func:`keyed_file`), so an edited or
replaced source gets new files; a cache that cannot be read or written is ignored (decoded again, in memory).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from broker_core.cache import cache_dir

DAILY_FORMAT = 1
"""Bumped when :class:`DailyColumns`' layout changes (older files are then ignored)."""


def keyed_file(source: Path, folder: str, suffix: str) -> Path:
    """``<cache>/<folder>/<stem>-<location hash>-<size>-<mtime ns><suffix>`` for the source file."""
    st = source.stat()
    where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / folder / f"{source.stem}-{where}-{st.st_size}-{st.st_mtime_ns}{suffix}"


def drop_older(source: Path, target: Path, suffix: str) -> None:
    """Remove the cache files of earlier versions of ``source`` (same location, another size or mtime)."""
    where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
    for old in target.parent.glob(f"{glob.escape(source.stem)}-{where}-*{suffix}"):
        if old != target:
            old.unlink(missing_ok=True)


def save_npy(array: np.ndarray, target: Path) -> None:
    """Write ``array`` atomically (a concurrent reader sees the old file or the whole new one)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, array)
    os.replace(tmp, target)


def save_npz(arrays: dict[str, np.ndarray], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, target)


@dataclass(frozen=True, slots=True)
class NpyMatrix:
    """A C-ordered 2-D ``.npy`` file whose rows are read in slices, never mapped (see the module doc)."""

    path: Path
    rows: int
    cols: int
    dtype: np.dtype[Any]
    offset: int
    """Where the data starts (after the header)."""

    @classmethod
    def open(cls, path: Path) -> NpyMatrix:
        """Read the header of ``path``; OSError or ValueError when it is missing or not a C-ordered 2-D array."""
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"{path}: .npy format {version} not read here")
            offset = f.tell()
        if fortran or len(shape) != 2 or dtype.hasobject:
            raise ValueError(f"{path}: not a C-ordered 2-D array")
        if path.stat().st_size != offset + shape[0] * shape[1] * dtype.itemsize:
            raise ValueError(f"{path}: truncated")
        return cls(path, int(shape[0]), int(shape[1]), dtype, offset)

    def read(self, row: int, lo: int, hi: int) -> np.ndarray:
        """``array[row, lo:hi]`` (clipped to the row) as a new in-memory array."""
        return self.read_rows((row,), lo, hi)[0]

    def read_rows(self, rows: Sequence[int], lo: int, hi: int) -> list[np.ndarray]:
        """``array[row, lo:hi]`` (clipped) of each of ``rows``, as new in-memory arrays, through one opening of
        the file (a day of one ticker is 7 slices of 2 files: opening each file once is a third of the cost)."""
        lo, hi = max(lo, 0), min(hi, self.cols)
        if hi <= lo:
            return [np.empty(0, dtype=self.dtype) for _ in rows]
        out: list[np.ndarray] = []
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for row in rows:
                array = np.empty(hi - lo, dtype=self.dtype)
                start = self.offset + (row * self.cols + lo) * self.dtype.itemsize
                if os.preadv(fd, [array.data], start) != array.nbytes:
                    raise OSError(f"{self.path}: short read")
                out.append(array)
        finally:
            os.close(fd)
        return out


@dataclass(frozen=True)
class DailyColumns:
    """A daily table grouped by key, rows sorted by (key, date): key ``k``'s rows are ``starts[k]`` up to the
    next key's start. Values are numpy columns; a column with nulls carries a mask (``None`` when read)."""

    keys: dict[str, tuple[int, int]]
    """Key → (first row, end row)."""
    day: np.ndarray
    """Days since 1970-01-01 (int64)."""
    columns: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]

    def rows(self, key: str) -> tuple[int, int] | None:
        return self.keys.get(key)

    def date_range(self, key: str, first_day: int, last_day: int) -> tuple[int, int]:
        """The rows of ``key`` with ``first_day <= day <= last_day`` (day numbers); (0, 0) for an unknown key."""
        span = self.keys.get(key)
        if span is None:
            return 0, 0
        lo, hi = span
        days = self.day[lo:hi]
        return lo + int(np.searchsorted(days, first_day, "left")), lo + int(np.searchsorted(days, last_day, "right"))

    def values(self, name: str, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of column ``name`` as Python values (``None`` where the source had a null)."""
        out: list[Any] = self.columns[name][lo:hi].tolist()
        mask = self.nulls.get(name)
        if mask is not None:
            for i in np.flatnonzero(mask[lo:hi]).tolist():
                out[i] = None
        return out

    def to_npz(self) -> dict[str, np.ndarray]:
        names = list(self.keys)
        starts = np.array([self.keys[k][0] for k in names] + [len(self.day)], dtype=np.int64)
        arrays: dict[str, np.ndarray] = {
            "format": np.array([DAILY_FORMAT], dtype=np.int64),
            "keys": np.array(names, dtype=str),
            "starts": starts,
            "day": self.day,
        }
        arrays.update({f"col.{n}": a for n, a in self.columns.items()})
        arrays.update({f"null.{n}": a for n, a in self.nulls.items()})
        return arrays

    @classmethod
    def from_npz(cls, arrays: Any) -> DailyColumns:
        """From the arrays :meth:`to_npz` wrote; ValueError when they do not fit together."""
        if int(arrays["format"][0]) != DAILY_FORMAT:
            raise ValueError("another column layout")
        names: list[str] = arrays["keys"].tolist()
        starts = arrays["starts"].tolist()
        day = arrays["day"]
        if len(starts) != len(names) + 1 or starts[-1] != len(day):
            raise ValueError("keys and rows do not fit")
        columns = {n[4:]: arrays[n] for n in arrays.files if n.startswith("col.")}
        nulls = {n[5:]: arrays[n] for n in arrays.files if n.startswith("null.")}
        if any(len(a) != len(day) for a in (*columns.values(), *nulls.values())):
            raise ValueError("columns of different lengths")
        keys = {k: (starts[i], starts[i + 1]) for i, k in enumerate(names)}
        return cls(keys, day, columns, nulls)


def decode_daily(path: Path, key: str, date_column: str = "date") -> DailyColumns:
    """Read a daily parquet file (needs pyarrow) into :class:`DailyColumns`, sorted by (key, date) as
    ``Table.sort_by`` sorts (stable). Dates may be ISO strings or date32."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path).sort_by([(key, "ascending"), (date_column, "ascending")])
    key_values: list[str] = table.column(key).to_pylist()
    keys: dict[str, tuple[int, int]] = {}
    start = 0
    for i in range(1, len(key_values) + 1):
        if i == len(key_values) or key_values[i] != key_values[start]:
            keys[key_values[start]] = (start, i)
            start = i
    day = pc.cast(table.column(date_column), pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64)
    columns: dict[str, np.ndarray] = {}
    nulls: dict[str, np.ndarray] = {}
    for name in table.column_names:
        if name in (key, date_column):
            continue
        column = table.column(name)
        if column.null_count:
            nulls[name] = np.asarray(column.is_null().to_numpy(), dtype=bool)
            column = pc.fill_null(column, 0) if pa.types.is_integer(column.type) else column
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            columns[name] = column.to_numpy()
        else:
            columns[name] = np.array(column.to_pylist(), dtype=str)
    return DailyColumns(keys, day, columns, nulls)


_LOADED: dict[Path, DailyColumns] = {}
"""Tables read in this process, by cache file (which names the source's size and mtime): read-only, so every
reader of the same data directory shares one copy."""


def cached_daily(path: Path, key: str, date_column: str = "date", folder: str = "daily") -> DailyColumns:
    """The daily columns of ``path``: from the cache folder, else decoded (and kept there for the next process)."""
    suffix = f".{key}.npz"
    target = keyed_file(path, folder, suffix)
    table = _LOADED.get(target)
    if table is not None:
        return table
    try:
        with np.load(target, allow_pickle=False) as arrays:
            table = DailyColumns.from_npz(arrays)
    except (OSError, ValueError, KeyError, EOFError):
        table = decode_daily(path, key, date_column)
        try:
            save_npz(table.to_npz(), target)
            drop_older(path, target, suffix)
        except OSError:
            pass
    _LOADED[target] = table
    return table


def cached_mapping(path: Path, key: str, value: str, folder: str = "daily") -> dict[str, Any]:
    """Two columns of a small parquet file as a dict (``key`` → ``value``), kept as JSON in the cache folder."""
    suffix = f".{key}-{value}.json"
    target = keyed_file(path, folder, suffix)
    try:
        loaded = json.loads(target.read_bytes())
        if isinstance(loaded, dict):
            return loaded
    except (OSError, ValueError):
        pass
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=[key, value])
    mapping = dict(zip(table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(mapping, f)
        os.replace(tmp, target)
        drop_older(path, target, suffix)
    except OSError:
        pass
    return mapping
