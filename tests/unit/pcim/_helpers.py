"""Builders for PCIM unit tests: bars, watch items and an engine on a fixed calendar."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from broker_core.clock import KST
from strategies.pcim.config import PcimParams
from strategies.pcim.engine import PcimEngine
from strategies.pcim.filters import GapStats, WatchItem
from strategies.sdk.bars import Bar

DAY = date(2026, 2, 27)


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), KST)


def bar(start: datetime, o: float, h: float, lo: float, c: float, v: int, sym: str = "005930") -> Bar:
    return Bar(sym, start, o, h, lo, c, v, (h + lo + c) / 3 * v)


def daily(
    closes: list[float],
    start: date = date(2025, 9, 1),
    opens: list[float] | None = None,
    volume: int = 1_000_000,
    sym: str = "005930",
) -> list[Bar]:
    out = []
    d = start
    for i, c in enumerate(closes):
        while d.weekday() >= 5:
            d += timedelta(days=1)
        o = opens[i] if opens else c
        out.append(
            Bar(sym, datetime.combine(d, time(0), KST), o, max(o, c) * 1.01, min(o, c) * 0.99, c, volume, c * volume)
        )
        d += timedelta(days=1)
    return out


def item(
    symbol: str = "005930",
    *,
    conviction: str = "HIGH",
    tier: str = "T1",
    prior_close: float = 10_000.0,
    atr20: float = 400.0,
    adtv20: float = 50e9,
    soft: float = 1.0,
    baseline: float | None = 100_000.0,
    rank: int = 1,
) -> WatchItem:
    tier_mult = {"T1": 1.0, "T2": 0.8, "T3": 0.5}[tier]
    conv = {"HIGH": 1.0, "MEDIUM": 0.7}[conviction]
    return WatchItem(
        session=DAY,
        symbol=symbol,
        name=symbol,
        conviction=conviction,
        conviction_mult=conv,
        prior_close=prior_close,
        sma20=prior_close * 0.95,
        adtv20=adtv20,
        atr20=atr20,
        tier=tier,
        tier_mult=tier_mult,
        soft_mult=soft,
        multipliers={"conviction": conv, "tier": tier_mult, "soft": soft},
        gap=GapStats(5, 1, 0.2, True, None, None, 60),
        runup_pct=0.0,
        market_cap=None,
        influencers=("inf_a",),
        video_ids=("vid1",),
        rank=rank,
        a_volume_baseline=baseline,
    )


def weekdays(a: date, b: date) -> list[date]:
    out, d = [], a
    while d <= b:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def engine(params: PcimParams | None = None) -> PcimEngine:
    return PcimEngine(params or PcimParams(), "PCIM", trading_days=weekdays)
