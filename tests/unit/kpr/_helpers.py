"""Builders shared by the KPR unit tests (one session: 2026-02-27, KST)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from broker_core.clock import KST
from strategies.kpr.config import KprParams
from strategies.kpr.decisions import Output
from strategies.kpr.engine import KprEngine, ProviderMode
from strategies.kpr.universe import SymbolCache

DAY = date(2026, 2, 27)
PROFILE = tuple(min(1.0, (i + 1) / 381) for i in range(391))
"""A linear cumulative-volume profile: 1/381 of the day per minute."""


def ts(h: int, m: int = 0, s: float = 0) -> datetime:
    """KST time on DAY; minutes may exceed 59 (ts(9, 70) = 10:10)."""
    return datetime(2026, 2, 27, h, tzinfo=KST) + timedelta(minutes=m, seconds=s)


def bar(start: datetime, o: float, h: float, lo: float, c: float, v: float, symbol: str = "A") -> dict[str, Any]:
    return {"symbol": symbol, "start": start, "open": o, "high": h, "low": lo, "close": c, "volume": v}


def cache(
    symbol: str = "A",
    *,
    sector: str = "S1",
    market: str = "KOSPI",
    atr20: float = 300.0,
    adv20: float = 1_000_000.0,
    prior_close: float = 10_000.0,
) -> SymbolCache:
    return SymbolCache(symbol, sector, market, prior_close, adv20, atr20, PROFILE, 20)


def engine(
    symbols: tuple[str, ...] = ("A",),
    params: KprParams | None = None,
    *,
    investor: ProviderMode = ProviderMode.DAILY_ONLY,
    program: ProviderMode = ProviderMode.UNAVAILABLE,
    nav: float = 1_000_000_000.0,
    caches: list[SymbolCache] | None = None,
) -> KprEngine:
    """An engine after premarket, provider probes (paper defaults) and the first account poll."""
    eng = KprEngine(params)
    eng.premarket(ts(8, 30), caches or [cache(s) for s in symbols])
    eng.set_provider_mode(ts(8, 30), "investor", investor)
    eng.set_provider_mode(ts(8, 30), "program", program)
    eng.on_account(ts(8, 31), nav, 0.0, buyable_cash=nav)
    return eng


def feed(eng: KprEngine, symbol: str, start: datetime, o: float, h: float, lo: float, c: float, v: float) -> Output:
    """One completed bar, delivered at its end (a stream bar)."""
    return eng.on_bar(symbol, bar(start, o, h, lo, c, v, symbol), start + timedelta(minutes=1), "ws")


def panic_path(eng: KprEngine, symbol: str = "A", hod: datetime | None = None) -> Output:
    """Scenario 1's day: flat 10,000 from 09:00, the HOD bar (H 10,100) at ``hod`` (10:00), flat to
    ``hod`` + 9 min, then the panic bar at ``hod`` + 10 min (L 9,600, C 9,650). Volumes make the
    session VWAP exactly 10,000 at the panic bar's close. Returns the panic bar's output."""
    hod = hod or ts(10, 0)
    t = ts(9, 0)
    while t < hod:
        feed(eng, symbol, t, 10_000, 10_000, 10_000, 10_000, 1_000)
        t += timedelta(minutes=1)
    feed(eng, symbol, hod, 10_000, 10_100, 10_000, 10_000, 1_050)
    for i in range(1, 10):
        feed(eng, symbol, hod + timedelta(minutes=i), 10_000, 10_000, 10_000, 10_000, 1_000)
    return feed(eng, symbol, hod + timedelta(minutes=10), 9_700, 9_700, 9_600, 9_650, 100)


def reclaim_bar(eng: KprEngine, start: datetime, symbol: str = "A", *, volume: float = 1_000) -> Output:
    """A bar closing above the scenario-1 reclaim (9,628.8): O 9,640 H 9,700 L 9,630 C 9,690."""
    return feed(eng, symbol, start, 9_640, 9_700, 9_630, 9_690, volume)


def strong_bar(eng: KprEngine, start: datetime, symbol: str = "A") -> Output:
    """A reclaim bar with BarStrength (CPR 0.93, C > O, V 5× the median): the micro proxy ACCUMULATEs."""
    return feed(eng, symbol, start, 9_640, 9_700, 9_630, 9_695, 5_000)
