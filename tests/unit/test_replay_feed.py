"""Replay of real KRX minute data (needs ../shared/data/krx or $TRADER_DATA_DIR: fails, never skips)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from broker_core.clock import KST
from broker_core.market_rules import is_on_tick
from broker_core.models import Bar, Side, Tick
from broker_core.paper import data as data_mod
from broker_core.paper.data import DataNotFound, KrxData, resolve_data_dir
from broker_core.paper.feed import TickFeed
from broker_core.paper.replay import MAX_TICKS_PER_BAR, ReplayFeed, bar_to_ticks, ticks_to_bars

SESSION = date(2026, 2, 27)
FIRST_SESSION = date(2025, 5, 29)
LATE_CLOSE = date(2025, 11, 13)
LATE_OPEN = date(2026, 1, 2)
PAIR = ["005930", "000660"]


@pytest.fixture(scope="module")
def krx() -> KrxData:
    try:
        return KrxData()
    except DataNotFound as exc:
        pytest.fail(f"the KRX reference data is required for these tests: {exc}")


def _raw_minute(krx: KrxData, symbol: str, day: date) -> pd.DataFrame:
    frame = pd.read_parquet(krx.data_dir / "minute" / f"{symbol}.parquet")
    return frame[frame["timestamp"].dt.date == day].reset_index(drop=True)


def _at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)


# KrxData


def test_sessions_and_latest(krx: KrxData) -> None:
    sessions = krx.sessions()
    assert SESSION in sessions and FIRST_SESSION in sessions
    assert sessions == sorted(sessions) and len(sessions) == len(set(sessions))
    assert krx.latest_session() == SESSION
    assert krx.sessions(["005930"])[0] == FIRST_SESSION


def test_minute_bars_match_the_parquet_file(krx: KrxData) -> None:
    for symbol in PAIR:
        bars = krx.minute_bars(symbol, SESSION)
        raw = _raw_minute(krx, symbol, SESSION)
        assert len(bars) == len(raw) == 381
        for bar, row in zip(bars, raw.itertuples(), strict=True):
            assert bar.symbol == symbol and bar.interval == "1m"
            assert bar.ts == row.timestamp.to_pydatetime() and bar.ts.utcoffset() == timedelta(hours=9)
            assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
                row.open,
                row.high,
                row.low,
                row.close,
                row.volume,
            )
        assert bars[-1].ts == _at(SESSION, 15, 30)
        assert bars[-2].ts == _at(SESSION, 15, 19)


def test_minute_bars_of_a_day_without_data_is_empty(krx: KrxData) -> None:
    assert krx.minute_bars("005930", date(2026, 2, 28)) == []


def test_prev_close_is_the_daily_close_of_the_previous_session(krx: KrxData) -> None:
    daily = pd.read_parquet(krx.data_dir / "daily_ohlcv.parquet")
    expected = daily[(daily.ticker == "005930") & (daily.date == "2026-02-26")].close.item()
    assert krx.prev_close("005930", SESSION) == expected
    assert krx.prev_close("005930", date(2024, 2, 19)) is None
    assert krx.prev_close("999999", SESSION) is None


def test_daily_bars_and_investor_flow(krx: KrxData) -> None:
    bars = krx.daily_bars("005930", date(2026, 2, 23), SESSION)
    assert [b.ts for b in bars][-1] == _at(SESSION, 0, 0)
    assert all(b.interval == "1d" and isinstance(b.volume, int) for b in bars)
    assert bars[-1].close == krx.minute_bars("005930", SESSION)[-1].close
    assert krx.daily_bars("005930", SESSION, date(2026, 2, 26)) == []
    flow = krx.investor_flow("000660", date(2026, 2, 25), SESSION)
    assert [row["date"] for row in flow] == [date(2026, 2, 25), date(2026, 2, 26), SESSION]
    assert all(isinstance(row["foreign_net"], int) and isinstance(row["inst_net"], int) for row in flow)


def test_tickers_keep_leading_zeros(krx: KrxData) -> None:
    sectors = krx.sector_map()
    assert len(sectors) == 103 and len(set(sectors.values())) == 17
    assert all(len(t) == 6 and t.isdigit() for t in sectors)
    assert "000660" in sectors and "005930" in sectors
    symbols = krx.minute_symbols()
    assert len(symbols) == 60 and symbols[0] == "000270"
    assert len(krx.daily_symbols()) == 103 and "000100" in krx.daily_symbols()
    assert krx.minute_bars("000660", SESSION)[0].symbol == "000660"


def test_prev_close_falls_back_to_the_last_minute_close(tmp_path: Path) -> None:
    (tmp_path / "minute").mkdir()
    stamps = pd.to_datetime(["2026-02-26 09:00", "2026-02-26 15:30", "2026-02-27 09:00"]).tz_localize("Asia/Seoul")
    pd.DataFrame(
        {
            "timestamp": stamps,
            "open": [100.0, 105.0, 106.0],
            "high": [101.0, 105.0, 107.0],
            "low": [99.0, 105.0, 106.0],
            "close": [100.0, 105.0, 107.0],
            "volume": [10, 20, 30],
        }
    ).to_parquet(tmp_path / "minute" / "012345.parquet")
    pd.DataFrame(
        {
            "ticker": ["000001"],
            "date": ["2026-02-26"],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
        }
    ).to_parquet(tmp_path / "daily_ohlcv.parquet")
    krx = KrxData(tmp_path)
    assert krx.minute_symbols() == ["012345"]
    assert krx.sessions() == [date(2026, 2, 26), SESSION]
    assert krx.prev_close("012345", SESSION) == 105.0
    assert krx.prev_close("012345", date(2026, 2, 26)) is None
    assert krx.daily_bars("012345", date(2026, 1, 1), SESSION) == []


# locating the data


def test_explicit_missing_dir_raises_and_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.delenv(data_mod.ENV_VAR, raising=False)
    with pytest.raises(DataNotFound) as info:
        resolve_data_dir(missing)
    assert str(missing) in str(info.value) and "synthetic" in str(info.value).lower()


def test_env_missing_dir_raises_without_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(data_mod.ENV_VAR, str(missing))
    with pytest.raises(DataNotFound) as info:
        KrxData()
    message = str(info.value)
    assert str(missing) in message and data_mod.ENV_VAR in message and "SyntheticFeed" in message
    assert isinstance(info.value, FileNotFoundError)


def test_env_and_explicit_order(krx: KrxData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data_mod.ENV_VAR, str(krx.data_dir))
    assert resolve_data_dir() == krx.data_dir
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()


def test_default_locations_are_all_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data_mod.ENV_VAR, raising=False)
    candidates = [tmp_path / "a" / "krx", tmp_path / "b" / "krx"]
    monkeypatch.setattr(data_mod, "_default_candidates", lambda: candidates)
    with pytest.raises(DataNotFound) as info:
        resolve_data_dir()
    assert all(str(c) in str(info.value) for c in candidates)


def test_default_location_is_next_to_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data_mod.ENV_VAR, raising=False)
    project_root = Path(data_mod.__file__).resolve().parents[2]
    assert resolve_data_dir() == (project_root.parent / "shared" / "data" / "krx").resolve()


def test_missing_file_inside_the_data_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound, match="daily_ohlcv.parquet"):
        KrxData(tmp_path).daily_bars("005930", SESSION, SESSION)
    with pytest.raises(DataNotFound, match="minute"):
        KrxData(tmp_path).minute_symbols()


# the replay feed


def test_replay_reproduces_every_minute_exactly(krx: KrxData) -> None:
    feed = ReplayFeed(krx, SESSION, PAIR)
    assert isinstance(feed, TickFeed)
    assert feed.session_date == SESSION and feed.symbols == PAIR
    ticks = list(feed)
    assert all(a.ts <= b.ts for a, b in pairwise(ticks))
    assert all(t.qty > 0 for t in ticks)
    assert feed.count_bars() == 2 * 381
    for symbol in PAIR:
        source = krx.minute_bars(symbol, SESSION)
        assert feed.bars(symbol) == source
        own = [t for t in ticks if t.symbol == symbol]
        assert all(a.ts < b.ts for a, b in pairwise(own))
        rebuilt = ticks_to_bars(own)
        assert rebuilt == source
        for got, want in zip(rebuilt, source, strict=True):
            assert (got.symbol, got.ts, got.open, got.high, got.low, got.close, got.volume, got.interval) == (
                want.symbol,
                want.ts,
                want.open,
                want.high,
                want.low,
                want.close,
                want.volume,
                want.interval,
            )
        auction = [t for t in own if t.ts >= _at(SESSION, 15, 20)]
        assert len(auction) == 1
        assert auction[0].ts == _at(SESSION, 15, 30)
        assert (auction[0].price, auction[0].qty) == (source[-1].close, source[-1].volume)


def test_replay_prev_close_and_first_aggressor(krx: KrxData) -> None:
    feed = ReplayFeed(krx, SESSION, PAIR)
    for symbol in PAIR:
        assert feed.prev_close(symbol) == krx.prev_close(symbol, SESSION)
    first = next(t for t in feed if t.symbol == "005930")
    assert first.price == 210_000.0 and feed.prev_close("005930") == 218_000.0
    assert first.aggressor is Side.SELL


def test_ticks_at_the_same_instant_follow_symbol_order(krx: KrxData) -> None:
    feed = ReplayFeed(krx, SESSION, ["000660", "005930"])
    head = list(zip(range(4), feed, strict=False))
    assert [t.symbol for _, t in head[:2]] == ["000660", "005930"]
    assert head[0][1].ts == head[1][1].ts


def test_replay_is_deterministic_and_reiterable(krx: KrxData) -> None:
    feed = ReplayFeed(krx, SESSION, PAIR)
    assert list(feed) == list(feed) == list(ReplayFeed(krx, SESSION, PAIR))


def test_replay_rejects_unknown_symbols_and_empty_days(krx: KrxData) -> None:
    with pytest.raises(DataNotFound, match="999999"):
        ReplayFeed(krx, SESSION, ["999999"])
    with pytest.raises(ValueError, match="2026-02-28"):
        ReplayFeed(krx, date(2026, 2, 28), PAIR)


# bar_to_ticks, property style


def _check_bar(bar: Bar, ticks: list, prev_price: float | None = None) -> None:
    assert ticks, bar
    prices = [t.price for t in ticks]
    assert prices[0] == bar.open and prices[-1] == bar.close, bar
    assert max(prices) == bar.high and min(prices) == bar.low, bar
    assert sum(t.qty for t in ticks) == bar.volume and all(t.qty > 0 for t in ticks), bar
    assert len(ticks) <= min(bar.volume, MAX_TICKS_PER_BAR)
    assert all(t.symbol == bar.symbol for t in ticks)
    end = bar.ts + timedelta(seconds=60)
    assert all(bar.ts <= t.ts < end for t in ticks)
    assert all(a.ts < b.ts for a, b in pairwise(ticks))
    ohlc = {bar.open, bar.high, bar.low, bar.close}
    assert all(is_on_tick(p) for p in prices if p not in ohlc), bar
    if all(is_on_tick(p) for p in ohlc):
        assert all(is_on_tick(p) for p in prices)
    last, side = prev_price, None
    for t in ticks:
        if last is not None and t.price != last:
            side = Side.BUY if t.price > last else Side.SELL
        if len(ticks) > 1:
            assert t.aggressor == side, (bar, ticks)
        last = t.price


@pytest.mark.parametrize("day", [FIRST_SESSION, LATE_CLOSE, LATE_OPEN, SESSION])
def test_bar_to_ticks_reproduces_real_bars(krx: KrxData, day: date) -> None:
    symbols = ["005930", "000660", "011790", "053800", "950160"]
    checked = 0
    for symbol in symbols:
        prev = krx.prev_close(symbol, day)
        for bar in krx.minute_bars(symbol, day):
            ticks = bar_to_ticks(bar, prev)
            _check_bar(bar, ticks, prev)
            assert ticks == bar_to_ticks(bar, prev)
            if bar.ts.time() == _at(day, 15, 30).time() and bar.high == bar.low:
                assert len(ticks) == 1 and ticks[0].ts == bar.ts and ticks[0].aggressor is None
            prev = bar.close
            checked += 1
    assert checked > 1500


def test_late_close_day_keeps_its_1530_range(krx: KrxData) -> None:
    bar = krx.minute_bars("005930", LATE_CLOSE)[-1]
    assert bar.ts == _at(LATE_CLOSE, 15, 30) and bar.high > bar.low
    ticks = bar_to_ticks(bar)
    assert len(ticks) > 1
    assert ticks_to_bars(ticks) == [bar]


def _bar(o: float, h: float, lo: float, c: float, v: int, hh: int = 10, mm: int = 0) -> Bar:
    return Bar("005930", _at(SESSION, hh, mm), o, h, lo, c, v)


@pytest.mark.parametrize(
    "bar",
    [
        _bar(70_000, 70_000, 70_000, 70_000, 1),
        _bar(70_000, 70_000, 70_000, 70_000, 2),
        _bar(70_000, 70_000, 70_000, 70_000, 1_000_000),
        _bar(70_000, 70_100, 70_000, 70_100, 2),
        _bar(70_100, 70_100, 70_000, 70_000, 2),
        _bar(70_000, 70_200, 70_000, 70_100, 3),
        _bar(70_100, 70_100, 69_900, 70_000, 3),
        _bar(70_000, 70_200, 69_900, 70_100, 4),
        _bar(70_000, 72_000, 68_000, 69_000, 5),
        _bar(70_000, 72_000, 68_000, 69_000, 123_457),
        _bar(1_990, 2_100, 1_950, 2_050, 9_999),
        _bar(49_800, 50_300, 49_500, 50_100, 777),
        _bar(55_900, 56_000, 55_800, 55_950, 85_187),
        _bar(70_000, 70_000, 70_000, 70_000, 5_000, 15, 30),
        _bar(103_600, 104_100, 103_600, 103_900, 401_062, 15, 30),
        _bar(70_000, 70_100, 69_900, 70_000, 7, 9, 0),
    ],
)
def test_bar_to_ticks_edge_bars(bar: Bar) -> None:
    ticks = bar_to_ticks(bar)
    _check_bar(bar, ticks)
    assert ticks_to_bars(ticks) == [bar]


def test_volume_limits_the_number_of_ticks() -> None:
    assert len(bar_to_ticks(_bar(70_000, 70_000, 70_000, 70_000, 1))) == 1
    assert len(bar_to_ticks(_bar(70_000, 70_200, 69_900, 70_100, 4))) == 4
    assert len(bar_to_ticks(_bar(70_000, 72_000, 68_000, 69_000, 10**6))) == MAX_TICKS_PER_BAR


def test_up_bar_visits_low_first_and_down_bar_high_first() -> None:
    up = [t.price for t in bar_to_ticks(_bar(70_000, 70_500, 69_500, 70_300, 1000))]
    assert up.index(69_500) < up.index(70_500)
    down = [t.price for t in bar_to_ticks(_bar(70_000, 70_500, 69_500, 69_800, 1000))]
    assert down.index(70_500) < down.index(69_500)


def test_closing_auction_is_one_print_at_1530() -> None:
    bar = _bar(216_500, 216_500, 216_500, 216_500, 13_951_009, 15, 30)
    assert bar_to_ticks(bar, 218_500) == [Tick("005930", _at(SESSION, 15, 30), 216_500, 13_951_009, None)]


def test_zero_volume_bar_emits_nothing() -> None:
    assert bar_to_ticks(_bar(70_000, 70_100, 69_900, 70_000, 0)) == []


def test_impossible_volume_keeps_open_and_close() -> None:
    """Fewer shares than distinct prices cannot reproduce the bar (never happens in the data)."""
    assert [t.price for t in bar_to_ticks(_bar(70_000, 70_200, 69_900, 70_100, 1))] == [70_100]
    assert [t.price for t in bar_to_ticks(_bar(70_000, 70_200, 69_900, 70_100, 2))] == [70_000, 70_100]
    assert [t.price for t in bar_to_ticks(_bar(70_000, 70_200, 69_900, 70_000, 3))] == [70_000, 69_900, 70_000]


def test_ticks_to_bars_groups_by_symbol_and_minute() -> None:
    a = _bar(70_000, 70_100, 69_900, 70_000, 100)
    b = Bar("000660", a.ts, 200_000, 201_000, 199_500, 200_500, 50)
    c = _bar(70_000, 70_000, 69_800, 69_800, 30, 10, 1)
    ticks = sorted(bar_to_ticks(a) + bar_to_ticks(b) + bar_to_ticks(c), key=lambda t: t.ts)
    assert ticks_to_bars(ticks) == [a, b, c]
