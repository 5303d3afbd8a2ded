"""KPR market data through the OMS proxy's HTTP shapes: the premarket cache (incremental across days),
drops with reasons, a missing proxy, investor rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from broker_core.clock import KST
from strategies.kpr import data as kpr_data
from strategies.kpr.config import KprParams
from strategies.kpr.universe import SymbolMeta
from strategies.sdk.errors import MarketDataUnavailable
from tests.unit.kpr._fake_oms import FakeOms

DAY = date(2026, 2, 27)
SESSIONS = [DAY - timedelta(days=k) for k in range(40, 0, -1)]  # every calendar day is a session here


def _oms() -> FakeOms:
    fake = FakeOms()
    for sym in ("A", "B"):
        fake.daily_bars[sym] = [
            {
                "ts": datetime.combine(d, datetime.min.time(), KST),
                "open": 10_000,
                "high": 10_100,
                "low": 9_900,
                "close": 10_000,
                "volume": 500_000,
            }
            for d in SESSIONS
        ]
    fake.daily_bars["C"] = fake.daily_bars["A"][-10:]  # too short for ATR20 / ADV20
    for sym in ("A", "C"):
        fake.minute_bars[sym] = [
            {
                "ts": datetime(d.year, d.month, d.day, hh, mm, tzinfo=KST),
                "open": 1,
                "high": 1,
                "low": 1,
                "close": 1,
                "volume": v,
            }
            for d in [*SESSIONS, DAY]
            for hh, mm, v in ((9, 0, 100), (12, 0, 100), (15, 30, 200))
        ]
    return fake


async def test_premarket_cache_and_drop_reasons():
    fake = _oms()
    store = kpr_data.ProfileStore()
    async with fake.client() as oms:
        res = await kpr_data.load_premarket(
            oms, DAY, [SymbolMeta("A", "S1"), SymbolMeta("B"), SymbolMeta("C"), SymbolMeta("X")], KprParams(), store
        )
    assert res.unavailable is None and res.sessions == SESSIONS[-20:]
    assert [c.symbol for c in res.caches] == ["A"]
    a = res.caches[0]
    assert (a.prior_close, a.adv20, a.atr20, a.profile_sessions) == (10_000, 500_000, pytest.approx(200), 20)
    assert a.expected_frac(9 * 60) == pytest.approx(0.25) and a.expected_frac(12 * 60) == pytest.approx(0.5)
    assert res.dropped == {"B": "NO_VOLUME_PROFILE", "C": "SHORT_DAILY", "X": "NO_DAILY"}
    # one daily call per symbol; the 20 profile sessions of A fit one intraday call (≤ 20 calendar days)
    assert len(fake.calls("/api/v1/marketdata/daily/")) == 4
    a_calls = [q for m, p, q in fake.requests if p == "/api/v1/marketdata/bars/A"]
    assert len(a_calls) == 1 and a_calls[0]["start"].startswith(str(SESSIONS[-20]))


async def test_the_next_day_fetches_only_the_new_session():
    fake = _oms()
    store = kpr_data.ProfileStore()
    async with fake.client() as oms:
        await kpr_data.load_premarket(oms, DAY - timedelta(days=1), [SymbolMeta("A")], KprParams(), store)
        fake.requests.clear()
        res = await kpr_data.load_premarket(oms, DAY, [SymbolMeta("A")], KprParams(), store)
    a_calls = [q for m, p, q in fake.requests if p == "/api/v1/marketdata/bars/A"]
    assert len(a_calls) == 1
    assert a_calls[0]["start"].startswith(str(DAY - timedelta(days=1))) and a_calls[0]["end"].startswith(
        str(DAY - timedelta(days=1))
    )
    assert [c.symbol for c in res.caches] == ["A"] and min(store.cums["A"]) == SESSIONS[-20]


async def test_a_missing_proxy_costs_one_call():
    fake = _oms()
    fake.no_proxy = True
    async with fake.client() as oms:
        res = await kpr_data.load_premarket(
            oms, DAY, [SymbolMeta("A"), SymbolMeta("B")], KprParams(), kpr_data.ProfileStore()
        )
    assert res.unavailable and "no market-data proxy" in res.unavailable
    assert res.caches == [] and len(fake.requests) == 1


def test_investor_today_from_net_shares():
    rows = [
        {"date": "2026-02-26", "foreign_net": 10, "inst_net": 5},
        {"date": "2026-02-27", "foreign_net": 1_000, "inst_net": -200, "close": 10_000},
    ]
    assert kpr_data.investor_today(rows, DAY, 9_000) == (10_000_000, -2_000_000)
    assert kpr_data.investor_today(rows[:1], DAY, 9_000) is None
    assert kpr_data.investor_today([{"date": "2026-02-27", "foreign_net": 3, "inst_net": 1}], DAY, 100) == (300, 100)


async def test_the_program_probe_sees_no_endpoint():
    fake = _oms()
    async with fake.client() as oms:
        with pytest.raises(MarketDataUnavailable):
            await kpr_data.program_net(oms, "A")
