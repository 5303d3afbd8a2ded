"""Builders shared by the KMP unit tests (one session: 2026-02-27, KST)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from broker_core.clock import KST
from strategies.kmp.config import KmpParams
from strategies.kmp.engine import KmpEngine
from strategies.kmp.universe import SymbolCache, TrendStats

DAY = date(2026, 2, 27)


def ts(h: int, m: int, s: float = 0) -> datetime:
    return datetime(2026, 2, 27, h, m, tzinfo=KST) + timedelta(seconds=s)


def bar(
    symbol: str, start: datetime, o: float, h: float, lo: float, c: float, v: float, value: float | None = None
) -> dict:
    """A 1m bar as the REST proxy / SDK hands it over (value defaults to tp·V)."""
    return {
        "symbol": symbol,
        "start": start,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": v,
        "value": value if value is not None else (h + lo + c) / 3 * v,
    }


def cache(
    symbol: str = "A",
    *,
    sector: str = "S1",
    prior_close: float = 10_000,
    trend_ok: bool = True,
    value_base: float | None = 30_300_000,
    vol1m_base: float | None = 1_000,
) -> SymbolCache:
    trend = TrendStats(10_000, 9_900, 9_800, 10, True) if trend_ok else TrendStats(10_000, 10_100, 9_800, -5, False)
    return SymbolCache(
        symbol=symbol, sector=sector, prior_close=prior_close, trend=trend, value_base=value_base, vol1m_base=vol1m_base
    )


def or_bars(
    symbol: str = "A", *, base: float = 10_100, high: float = 10_200, low: float = 10_000, volume: float = 1_000
) -> list[dict]:
    """15 bars 09:00–09:14: O=C=base, H=base+50, L=base−50; 09:05 reaches ``high``, 09:10 ``low``.

    With the defaults: OR 10,000–10,200 (or_pct 1.98%), VWAP 10,100, value15 = 151.5M (surge 5.0
    against the default value_base 30.3M), trig = 10,210.
    """
    out = []
    for i in range(15):
        h, lo = base + 50, base - 50
        if i == 5:
            h = high
        if i == 10:
            lo = low
        out.append(bar(symbol, ts(9, i), base, h, lo, base, volume))
    return out


def scanned_engine(
    symbols=("A",),
    params: KmpParams | None = None,
    *,
    vi_ref: float | None = 10_200,
    nav: float = 1_000_000_000,
    caches=None,
    bars=None,
) -> KmpEngine:
    """Engine after premarket, account, the 09:15 scan and (with vi_ref) a quote → WATCH."""
    eng = KmpEngine(params)
    eng.premarket(ts(8, 50), caches or [cache(s) for s in symbols])
    eng.on_account(ts(8, 55), nav, 0.0)
    eng.scan(ts(9, 15), bars or {s: or_bars(s) for s in symbols})
    if vi_ref is not None:
        for s in symbols:
            eng.on_quote(s, ts(9, 15, 1), 10_090, 10_100, vi_ref=vi_ref)
    return eng


def feed_volume_bars(eng: KmpEngine, symbol: str = "A", last_volume: float = 15_000, minute: int = 20) -> None:
    """Completed bars of the 5 minutes before 09:``minute`` (tp 10,150); the last carries ``last_volume``."""
    for i in range(minute - 5, minute):
        eng.on_bar(
            symbol, bar(symbol, ts(9, i), 10_150, 10_180, 10_120, 10_150, last_volume if i == minute - 1 else 3_000)
        )


def armed_engine(symbols=("A",), params: KmpParams | None = None, minute: int = 20, **kw) -> KmpEngine:
    """Break at 09:mm:05 (10,220), pullback to 10,200 at :20 → ARMED; fresh quote 10,210/10,220 at :45.

    A reclaim trade at 10,220 at 09:mm:50 then meets every gate with the defaults.
    """
    eng = scanned_engine(symbols, params, **kw)
    for s in symbols:
        feed_volume_bars(eng, s, minute=minute)
        eng.on_trade(s, 10_220, 10, ts(9, minute, 5))
        eng.on_trade(s, 10_200, 10, ts(9, minute, 20))
        eng.on_quote(s, ts(9, minute, 45), 10_210, 10_220)
    return eng
