"""KMP's premarket across days: with a MinuteHistory the next day asks the proxy for the one new session per
symbol, and builds the same caches as a process that starts fresh that day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from broker_core.clock import KST
from strategies.kmp import data as kmp_data
from strategies.kmp.config import KmpParams
from strategies.kmp.universe import SymbolMeta
from tests.unit.kpr._fake_oms import FakeOms

DAY = date(2026, 2, 27)
SESSIONS = [DAY - timedelta(days=k) for k in range(100, -1, -1)]  # every calendar day is a session here
METAS = [SymbolMeta("A", sector="S1"), SymbolMeta("B", sector="S2"), SymbolMeta("N", sector="S3")]


def _bar(ts: datetime, price: float, volume: int) -> dict[str, Any]:
    return {"ts": ts, "open": price, "high": price + 10, "low": price - 10, "close": price, "volume": volume}


def _oms() -> FakeOms:
    fake = FakeOms()
    for n, sym in enumerate(("A", "B", "N")):
        fake.daily_bars[sym] = [
            _bar(datetime.combine(d, datetime.min.time(), KST), 10_000 + 10 * k + n, 500_000 + k)
            for k, d in enumerate(SESSIONS)
        ]
    for n, sym in enumerate(("A", "B")):  # N has daily bars only: no minute history
        fake.minute_bars[sym] = [
            _bar(datetime(d.year, d.month, d.day, 9, m, tzinfo=KST), 10_000 + m, 1_000 + 7 * k + m * (n + 1))
            for k, d in enumerate(SESSIONS)
            for m in range(60)
        ]
    return fake


def _minute_calls(fake: FakeOms) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for _, path, query in fake.requests:
        if path.startswith("/api/v1/marketdata/bars/"):
            out.setdefault(path.rsplit("/", 1)[1], []).append(query["start"][:10])
    return out


async def test_the_next_day_asks_only_for_the_new_session_and_builds_the_same_caches() -> None:
    fake = _oms()
    history = kmp_data.MinuteHistory()
    params = KmpParams()
    async with fake.client("KMP") as oms:
        first = await kmp_data.load_premarket(oms, DAY - timedelta(days=1), METAS, params, history=history)
        assert {s: len(c) for s, c in _minute_calls(fake).items()} == {"A": params.vol_base_sessions, "B": 20, "N": 1}
        fake.requests.clear()
        second = await kmp_data.load_premarket(oms, DAY, METAS, params, history=history)
        calls = _minute_calls(fake)
        fake.requests.clear()
        fresh = await kmp_data.load_premarket(oms, DAY, METAS, params)

    assert first.unavailable is None and second.unavailable is None
    assert calls == {"A": [str(DAY - timedelta(days=1))], "B": [str(DAY - timedelta(days=1))], "N": [calls["N"][0]]}
    assert second.calls == len(METAS) + 3 < fresh.calls
    assert second.caches == fresh.caches and second.missing == fresh.missing == {"N": "NO_MINUTE_HISTORY"}
    assert second.caches[0].vol1m_base != first.caches[0].vol1m_base  # the window moved by one session
    assert history.sessions_held() == 2 * params.vol_base_sessions  # the session that left the window was pruned
