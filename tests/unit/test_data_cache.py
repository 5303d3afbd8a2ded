"""The cache files that let a process read the calendars and the reference data without pandas or pyarrow:
the session table, the daily columns, the two-column maps and the minute columns read by slice. Each round
trips, is rebuilt when its source changes or it is damaged, and gives what the source gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from broker_core import calendars as cals
from broker_core.cache import CACHE_ENV
from broker_core.clock import KST
from broker_core.paper import columns
from broker_core.paper.columns import NpyMatrix, cached_daily, cached_mapping
from broker_core.paper.data import KrxData, resolve_data_dir
from broker_core.paper.us_data import UsData

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    monkeypatch.setattr(columns, "_LOADED", {})
    return folder


# -- the session table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [cals.KRX, cals.NYSE])
def test_the_session_table_round_trips_and_answers_as_the_calendar(cache: Path, code: str) -> None:
    built = cals.session_table.__wrapped__(code)  # the function under the per-process cache
    (kept,) = cache.glob(f"sessions-{code}-*.json")
    assert kept.name == f"sessions-{code}-{cals.library_version()}-{date.today().isoformat()}.json"
    again = cals.SessionTable.load(kept, code)
    assert again == built
    cal = cals.calendar(code)
    assert [date.fromordinal(n) for n in built.days] == [ts.date() for ts in cal.sessions]
    assert built.tz == str(cal.tz)
    day = date(2025, 12, 20)
    for _ in range(60):
        day += timedelta(days=1)
        assert built.is_session(day) is bool(cal.is_session(day.isoformat()))
        if built.is_session(day):
            open_, close = built.open_close(day) or (None, None)
            assert open_ == cal.session_open(day.isoformat()).to_pydatetime()
            assert close == cal.session_close(day.isoformat()).to_pydatetime()
        else:
            assert built.open_close(day) is None


def test_a_damaged_or_foreign_session_table_is_rebuilt_and_older_days_dropped(cache: Path) -> None:
    cache.mkdir()
    older = cache / f"sessions-{cals.KRX}-{cals.library_version()}-2000-01-01.json"
    older.write_text("{}")
    built = cals.session_table.__wrapped__(cals.KRX)
    (kept,) = cache.glob(f"sessions-{cals.KRX}-*.json")  # the earlier day's table is gone
    kept.write_text("not json")
    assert cals.SessionTable.load(kept, cals.KRX) is None
    assert cals.session_table.__wrapped__(cals.KRX) == built
    assert cals.SessionTable.load(kept, cals.NYSE) is None  # another calendar's name: not this table
    body = json.loads(kept.read_text())
    body["closes"] = body["closes"][:-1]
    kept.write_text(json.dumps(body))
    assert cals.SessionTable.load(kept, cals.KRX) is None  # lists of different lengths


def test_out_of_range_and_odd_inputs_keep_the_calendars_answers_and_errors() -> None:
    cal = cals.calendar(cals.KRX)
    last = cal.last_session.date()
    with pytest.raises(ValueError, match="out of bounds|later than"):
        cals.next_trading_day(last)
    assert cals.previous_trading_day(last + timedelta(days=1)) == last
    with pytest.raises(ValueError):
        cals.is_trading_day("2026-02-27 10:00")  # pandas' error for a time of day, as before
    with pytest.raises(ValueError):
        cals.is_trading_day("2026-02-30")
    assert cals.timezone(cals.KRX).key == "Asia/Seoul" and cals.timezone(cals.NYSE).key == "America/New_York"


# -- daily columns and two-column maps -----------------------------------------------------------------------


def _write_daily(path: Path, rows: list[tuple[str, str, float | None, float]]) -> None:
    table = pa.table(
        {
            "ticker": pa.array([r[0] for r in rows], pa.large_string()),
            "date": pa.array([r[1] for r in rows], pa.large_string()),
            "close": pa.array([r[2] for r in rows], pa.float64()),
            "volume": pa.array([r[3] for r in rows], pa.float64()),
        }
    )
    pq.write_table(table, path)


def test_daily_columns_round_trip_keep_nulls_and_follow_a_changed_source(cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "daily.parquet"
    _write_daily(
        source,
        [("B", "2026-01-05", 2.0, 20.0), ("A", "2026-01-06", None, 11.0), ("A", "2026-01-05", 1.0, 10.0)],
    )
    first = cached_daily(source, "ticker")
    assert first.keys == {"A": (0, 2), "B": (2, 3)}
    assert first.values("close", 0, 3) == [1.0, None, 2.0]
    assert [date(1970, 1, 1) + timedelta(days=d) for d in first.day.tolist()] == [
        date(2026, 1, 5),
        date(2026, 1, 6),
        date(2026, 1, 5),
    ]
    assert first.date_range("A", (date(2026, 1, 6) - date(1970, 1, 1)).days, 10**6) == (1, 2)
    assert first.date_range("Z", 0, 10**6) == (0, 0)
    (kept,) = (cache / "daily").glob("daily-*.ticker.npz")

    columns._LOADED.clear()
    again = cached_daily(source, "ticker")  # read back from the file
    assert again.keys == first.keys and again.values("close", 0, 3) == [1.0, None, 2.0]
    assert np.array_equal(again.day, first.day)

    _write_daily(source, [("A", "2026-01-07", 3.0, 30.0)])
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    changed = cached_daily(source, "ticker")
    assert changed.keys == {"A": (0, 1)} and changed.values("close", 0, 1) == [3.0]
    assert [p.name for p in (cache / "daily").glob("daily-*.ticker.npz")] != [kept.name]
    assert len(list((cache / "daily").glob("daily-*.ticker.npz"))) == 1  # the older version is dropped

    (new_file,) = (cache / "daily").glob("daily-*.ticker.npz")
    new_file.write_bytes(b"damaged")
    columns._LOADED.clear()
    assert cached_daily(source, "ticker").values("close", 0, 1) == [3.0]


def test_a_two_column_map_is_kept_as_json(cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "sector_map.parquet"
    pq.write_table(pa.table({"ticker": ["A", "B"], "sector": ["Bio", None]}), source)
    assert cached_mapping(source, "ticker", "sector") == {"A": "Bio", "B": None}
    (kept,) = (cache / "daily").glob("sector_map-*.ticker-sector.json")
    assert json.loads(kept.read_text()) == {"A": "Bio", "B": None}
    kept.write_text(json.dumps({"A": "read from the cache"}))
    assert cached_mapping(source, "ticker", "sector") == {"A": "read from the cache"}


def test_npy_matrix_reads_row_slices_and_refuses_a_truncated_file(tmp_path: Path) -> None:
    array = np.arange(30, dtype=np.int64).reshape(3, 10)
    path = tmp_path / "m.npy"
    np.save(path, array)
    m = NpyMatrix.open(path)
    assert (m.rows, m.cols) == (3, 10)
    assert m.read(1, 2, 5).tolist() == [12, 13, 14]
    assert m.read(2, 8, 99).tolist() == [28, 29] and m.read(0, 5, 5).tolist() == []
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="truncated"):
        NpyMatrix.open(path)
    np.save(path, np.zeros(4))
    with pytest.raises(ValueError):
        NpyMatrix.open(path)


# -- the KRX and US readers on the reference data -----------------------------------------------------------


def test_krx_daily_tables_give_what_the_parquet_files_hold(cache: Path) -> None:
    data = KrxData()
    raw = pq.read_table(data.data_dir / "daily_ohlcv.parquet").to_pylist()
    symbol = raw[0]["ticker"]
    rows = sorted((r for r in raw if r["ticker"] == symbol), key=lambda r: r["date"])
    bars = data.daily_bars(symbol, date(2000, 1, 1), date(2100, 1, 1))
    assert [(b.ts.date().isoformat(), b.open, b.close, b.volume) for b in bars] == [
        (r["date"], r["open"], r["close"], int(r["volume"])) for r in rows
    ]
    assert bars[0].ts == datetime.combine(date.fromisoformat(rows[0]["date"]), time(0), KST)
    day = date.fromisoformat(rows[5]["date"])
    assert data.prev_close(symbol, day) == rows[4]["close"]
    flow = pq.read_table(data.data_dir / "daily_flow.parquet").to_pylist()
    first = next(r for r in sorted(flow, key=lambda r: r["date"]) if r["ticker"] == symbol)
    got = data.investor_flow(symbol, date.fromisoformat(first["date"]), date.fromisoformat(first["date"]))
    assert got == [{"date": date.fromisoformat(first["date"]), "foreign_net": int(first["foreign_net"]),
                    "inst_net": int(first["inst_net"])}]  # fmt: skip
    sectors = pq.read_table(data.data_dir / "sector_map.parquet").to_pylist()
    assert data.sector_map() == {r["ticker"]: r["sector"] for r in sectors}
    assert KrxData()._table("daily_ohlcv.parquet") is data._table("daily_ohlcv.parquet")  # one copy a process


def test_a_day_read_by_slice_is_the_day_of_the_mapped_columns(cache: Path) -> None:
    data = KrxData()
    symbol = data.minute_symbols()[0]
    sessions = data.sessions([symbol])
    for day in (sessions[0], sessions[len(sessions) // 2], sessions[-1], date(2000, 1, 3)):
        mapped, read = data.minute_arrays(symbol).session(day), data.minute_day(symbol, day)
        for name in ("ts", "day", "open", "high", "low", "close", "volume"):
            assert np.array_equal(getattr(mapped, name), getattr(read, name)), name
            assert not isinstance(getattr(read, name), np.memmap)
        assert data.minute_covers(symbol, day) is data.minute_arrays(symbol).covers(day)
    day = sessions[-1]
    start, end = datetime.combine(day, time(10, 0), KST), datetime.combine(day, time(10, 4), KST)
    assert [b.ts for b in data.minute_bars(symbol, day, start, end)] == [start + timedelta(minutes=i) for i in range(5)]
    assert data.minute_bars(symbol, day, end, start) == []


def test_us_daily_columns_come_from_the_cache(cache: Path) -> None:
    data = UsData()
    raw = pq.read_table(data.data_dir / "daily_ohlcv.parquet", columns=["symbol", "date", "close"]).to_pylist()
    symbol = raw[0]["symbol"]
    closes = [r["close"] for r in sorted((r for r in raw if r["symbol"] == symbol), key=lambda r: r["date"])]
    assert data.arrays(symbol).close.tolist() == closes
    assert list((cache / "daily").glob("daily_ohlcv-*.symbol.npz"))
    columns._LOADED.clear()
    assert UsData().arrays(symbol).close.tolist() == closes


def test_with_the_caches_built_no_pandas_pyarrow_or_exchange_calendars_is_imported(cache: Path) -> None:
    script = """
import sys
from datetime import date
from broker_core import calendars
from broker_core.markets import us
from broker_core.paper.data import KrxData
from broker_core.paper.us_data import UsData
assert calendars.is_trading_day("2026-02-27") and calendars.next_trading_day(date(2026, 2, 27)) == date(2026, 3, 3)
calendars.session_open_close(date(2026, 2, 27)); calendars.trading_days("2026-01-01", "2026-02-01")
us.session(date(2026, 3, 6)); calendars.timezone("XKRX")
data, day = KrxData(), date(2026, 2, 27)
assert data.minute_bars("005930", day) and data.prev_close("005930", day) and data.index_bars("KOSPI", day, day)
data.sector_map(); data.investor_flow("005930", day, day); data.sessions(["005930"])
UsData().daily_bars("AAPL", date(2025, 1, 1), date(2025, 2, 1)); UsData().sector_map()
heavy = sorted(m for m in ("pandas", "pyarrow", "exchange_calendars") if m in sys.modules)
print(",".join(heavy) or "none")
"""
    env = {**os.environ, CACHE_ENV: str(cache), "TRADER_DATA_DIR": str(resolve_data_dir())}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() != "none"  # the first run builds the caches (and needs them)
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "none"
