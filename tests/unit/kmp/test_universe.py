"""K1–K2: universe filter and premarket caches (trend_ok, value_base, vol1m_base)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from broker_core.clock import KST
from strategies.kmp.config import KmpParams, UniverseConfig
from strategies.kmp.universe import (
    SymbolMeta,
    build_symbol_cache,
    drop_reason,
    infer_kind,
    select_universe,
    trend_stats,
    unknown_sector,
    value_base,
    vol1m_base,
)


def test_k1_drops_non_common_shares():
    metas = [
        SymbolMeta("005930", "삼성전자"),
        SymbolMeta("005935", "삼성전자우"),  # preferred (code not ending in 0)
        SymbolMeta("069500", "KODEX 200"),  # ETF by brand
        SymbolMeta("580001", "신한 레버리지 WTI원유 선물 ETN"),
        SymbolMeta("440790", "하나30호스팩"),  # SPAC
        SymbolMeta("000020", "동화약품", is_admin_issue=True),
        SymbolMeta("000040", "KR모터스", is_halted=True),
        SymbolMeta("000050", "경방", kind="STOCK"),
        SymbolMeta("900110", "이스트아시아홀딩스", kind="ETF"),  # explicit flag wins
    ]
    kept, dropped = select_universe(metas)
    assert [m.symbol for m in kept] == ["000050", "005930"]
    assert dropped == {
        "005935": "PREFERRED",
        "069500": "ETF",
        "580001": "ETN",
        "440790": "SPAC",
        "000020": "ADMIN_ISSUE",
        "000040": "HALTED",
        "900110": "ETF",
    }


def test_k1_config_symbols_exclude_markets():
    metas = [
        SymbolMeta("000010", market="KOSPI"),
        SymbolMeta("000020", market="KOSDAQ"),
        SymbolMeta("000030", market="KONEX"),
    ]
    kept, dropped = select_universe(metas, UniverseConfig(exclude=["000010"]))
    assert [m.symbol for m in kept] == ["000020"]
    assert dropped == {"000010": "EXCLUDED", "000030": "MARKET_KONEX"}
    kept, _ = select_universe(metas, UniverseConfig(symbols=["000020"]))
    assert [m.symbol for m in kept] == ["000020"]


def test_infer_kind_and_sector_fallback():
    assert infer_kind("005930", "삼성전자") == "STOCK"
    assert drop_reason(SymbolMeta("005930")) is None
    assert unknown_sector("123450") == "UNKNOWN:123450"


def test_k2_trend_ok():
    rising = [float(100 + i) for i in range(65)]
    t = trend_stats(rising)
    # SMA20 = mean(145..164) = 154.5, SMA60 = mean(105..164) = 134.5, slope = 5
    assert t.sma_fast == pytest.approx(154.5) and t.sma_slow == pytest.approx(134.5)
    assert t.slope_fast == pytest.approx(5) and t.trend_ok
    falling = list(reversed(rising))
    assert not trend_stats(falling).trend_ok
    # close below SMA20 fails even in an uptrend
    dip = rising[:-1] + [140.0]
    assert not trend_stats(dip).trend_ok
    # too little history → not ok
    assert not trend_stats(rising[:59]).trend_ok


def _mbar(day: date, h: int, m: int, v: float, price: float = 1_000.0, value: float | None = None) -> dict:
    start = datetime(day.year, day.month, day.day, h, m, tzinfo=KST)
    d = {"start": start, "open": price, "high": price, "low": price, "close": price, "volume": v}
    if value is not None:
        d["value"] = value
    return d


def test_k2_value_base_mean_of_last_14_sessions_0900_0914():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(16)]
    bars = []
    for i, d in enumerate(days):
        bars.append(_mbar(d, 9, 0, 10, value=1_000 * (i + 1)))  # in window
        bars.append(_mbar(d, 9, 14, 10, value=1_000))  # in window
        bars.append(_mbar(d, 9, 15, 10, value=99_999))  # outside (09:15)
    # last 14 sessions are i = 2..15 → mean of (i+1)·1000 + 1000 = mean(3..16)·1000 + 1000 = 10,500
    assert value_base(bars) == pytest.approx(10_500)


def test_k2_vol1m_base_pooled_missing_minutes_count_zero():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(20)]
    bars = [_mbar(d, 9, 0, 600) for d in days]  # one bar per session, 59 quiet minutes
    bars += [_mbar(d, 10, 0, 10_000) for d in days]  # 10:00 is outside 09:00–09:59
    assert vol1m_base(bars) == pytest.approx(600 / 60)


def test_k2_value_from_tp_times_volume_when_missing():
    d = date(2026, 1, 2)
    bar = {
        "start": datetime(2026, 1, 2, 9, 1, tzinfo=KST),
        "open": 100,
        "high": 120,
        "low": 90,
        "close": 111,
        "volume": 10,
    }
    assert value_base([bar]) == pytest.approx((120 + 90 + 111) / 3 * 10)
    assert value_base([]) is None and vol1m_base([]) is None
    assert d


def test_build_symbol_cache_excludes_today_and_uses_sector_map():
    today = date(2026, 2, 27)
    daily = [{"date": date(2025, 11, 1) + timedelta(days=i), "close": 100.0 + i} for i in range(65)]
    daily.append({"date": today, "close": 1.0})  # today's row must be ignored
    minutes = [_mbar(date(2026, 2, 26), 9, 0, 120, value=5_000), _mbar(today, 9, 0, 99_999, value=9e9)]
    c = build_symbol_cache(SymbolMeta("000660", sector="IT"), daily, minutes, today=today)
    assert c.prior_close == 164.0 and c.trend_ok
    assert c.value_base == 5_000 and c.vol1m_base == pytest.approx(2.0)
    assert c.sector == "IT"
    c2 = build_symbol_cache("000670", daily, minutes, today=today, sector_overrides={"000670": "CHEM"})
    assert c2.sector == "CHEM"
    assert build_symbol_cache("000680", [], [], today=today).sector == "UNKNOWN:000680"


def test_params_drive_the_windows():
    p = KmpParams(value_base_sessions=1)
    bars = [_mbar(date(2026, 1, 1), 9, 0, 1, value=100), _mbar(date(2026, 1, 2), 9, 0, 1, value=300)]
    assert value_base(bars, p) == 300
