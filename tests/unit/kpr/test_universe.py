"""P1 premarket cache: prior close, ADV20 (shares), daily ATR20, the 20-day cumulative-volume profile."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from broker_core.clock import KST
from strategies.kpr.config import KprParams, UniverseConfig
from strategies.kpr.universe import (
    PROFILE_MINUTES,
    SymbolMeta,
    build_symbol_cache,
    daily_stats,
    expected_frac,
    select_universe,
    session_cumulative,
    volume_profile,
)

P = KprParams()


def _daily(n: int, *, close: float = 10_000, rng: float = 200, volume: float = 1_000) -> list[dict]:
    start = date(2026, 1, 1)
    return [
        {
            "start": datetime.combine(start + timedelta(days=i), datetime.min.time(), KST),
            "open": close,
            "high": close + rng / 2,
            "low": close - rng / 2,
            "close": close,
            "volume": volume + i,
        }
        for i in range(n)
    ]


def _minute(day: date, hh: int, mm: int, v: float) -> dict:
    return {
        "start": datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST),
        "open": 1,
        "high": 1,
        "low": 1,
        "close": 1,
        "volume": v,
    }


def test_daily_stats():
    bars = _daily(30)
    prior, adv, atr20 = daily_stats(bars, P)
    assert prior == 10_000
    assert adv == pytest.approx(sum(1_000 + i for i in range(10, 30)) / 20)  # the last 20 sessions, shares
    assert atr20 == pytest.approx(200)  # constant range, no gaps
    assert daily_stats(_daily(19), P) == "SHORT_DAILY"
    assert daily_stats([], P) == "NO_DAILY"
    assert daily_stats([dict(b, volume=0) for b in _daily(25)], P) == "NO_VOLUME"


def test_session_cumulative_and_profile():
    d = date(2026, 2, 2)
    cum = session_cumulative(
        [_minute(d, 9, 0, 100), _minute(d, 9, 2, 300), _minute(d, 15, 30, 600), _minute(d, 8, 59, 999)]
    )
    assert len(cum) == PROFILE_MINUTES
    assert (cum[0], cum[1], cum[2], cum[389], cum[390]) == (100, 100, 400, 400, 1_000)
    other = [1_000.0] * PROFILE_MINUTES  # everything traded in the first minute
    profile, used = volume_profile([cum, other, [0.0] * PROFILE_MINUTES])  # an empty session is left out
    assert used == 2
    assert profile[0] == pytest.approx((0.1 + 1.0) / 2)
    assert profile[2] == pytest.approx((0.4 + 1.0) / 2)
    assert expected_frac(profile, 9 * 60 + 2) == pytest.approx(0.7)
    assert expected_frac(profile, 16 * 60) == pytest.approx(1.0)  # clamped to the last minute
    assert expected_frac((), 600) is None


def test_build_cache_and_drop_reasons():
    sessions = [date(2026, 2, d) for d in range(2, 22)]
    cums = {d: session_cumulative([_minute(d, 9, 0, 100), _minute(d, 10, 0, 100)]) for d in sessions}
    meta = SymbolMeta("005930", "Tech", "KOSPI")
    built = build_symbol_cache(meta, _daily(30), cums, sessions, P)
    assert not isinstance(built, str)
    assert (built.symbol, built.sector, built.market, built.profile_sessions) == ("005930", "Tech", "KOSPI", 20)
    assert built.expected_frac(9 * 60 + 30) == pytest.approx(0.5)
    few = {d: cums[d] for d in sessions[:4]}
    assert build_symbol_cache(meta, _daily(30), few, sessions, P) == "NO_VOLUME_PROFILE"
    assert build_symbol_cache(meta, [], cums, sessions, P) == "NO_DAILY"
    nosector = build_symbol_cache(SymbolMeta("000660"), _daily(30), cums, sessions, P)
    assert not isinstance(nosector, str) and nosector.sector == "UNKNOWN:000660"


def test_select_universe():
    metas = [SymbolMeta("005930"), SymbolMeta("005935"), SymbolMeta("000660"), SymbolMeta("035420")]
    kept, dropped = select_universe(metas, UniverseConfig(exclude=["000660"]))
    assert [m.symbol for m in kept] == ["005930", "035420"]
    assert dropped == {"005935": "PREFERRED", "000660": "EXCLUDED"}
    kept, _ = select_universe(metas, UniverseConfig(symbols=["035420"]))
    assert [m.symbol for m in kept] == ["035420"]
