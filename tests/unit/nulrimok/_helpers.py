"""Builders shared by the Nulrimok unit tests (KST; sessions 2026-02-24 … 2026-02-27)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from broker_core.clock import KST
from strategies.nulrimok.bars30 import Bar30
from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.engine import NulrimokEngine
from strategies.nulrimok.features import SymbolFeatures
from strategies.nulrimok.regime import RegimeResult, tier_of
from strategies.nulrimok.selection import Selection, TickerRow

D1, D2, D3, D4 = date(2026, 2, 24), date(2026, 2, 25), date(2026, 2, 26), date(2026, 2, 27)
P = NulrimokParams()


def at(day: date, h: int, m: int, s: float = 0) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, tzinfo=KST) + timedelta(seconds=s)


def bar(sym: str, start: datetime, o: float, h: float, lo: float, c: float, v: float) -> Bar30:
    return Bar30(sym, start, o, h, lo, c, v, (h + lo + c) / 3 * v)


def history(sym: str, day: date, n: int = 20, close: float = 10_072.5, volume: float = 100_000) -> list[Bar30]:
    """``n`` flat 30m bars on the sessions before ``day`` (13 a session, newest last)."""
    out: list[Bar30] = []
    d = day
    while len(out) < n:
        d -= timedelta(days=1)
        if d.weekday() >= 5:
            continue
        for k in range(12, -1, -1):
            start = at(d, 9, 0) + timedelta(minutes=30 * k)
            out.append(bar(sym, start, close, close + 20, close - 20, close, volume))
            if len(out) == n:
                break
    return sorted(out, key=lambda b: b.start)


def features(
    sym: str,
    *,
    sector: str = "S1",
    asof: date = D3,
    avwap_ref: float = 10_000.0,
    close: float = 10_050.0,
    atr30m: float = 100.0,
    persistence: float = 0.8,
    flow_reversal: bool = False,
    swing_high10: float = 10_400.0,
    **kw: Any,
) -> SymbolFeatures:
    values: dict[str, Any] = dict(
        symbol=sym,
        sector=sector,
        asof=asof,
        history_ok=True,
        sessions=300,
        last_day=asof,
        close=close,
        adv20=5e10,
        sma20=close * 0.98,
        above_sma20=True,
        sma50=close * 0.95,
        slope50=10.0,
        trend_ok=True,
        trend_raw=0.05,
        r20=0.05,
        r60=0.10,
        atr20=atr30m * 3.6,
        atr30m_est=atr30m,
        swing_high10=swing_high10,
        flow_sessions=300,
        persistence=persistence,
        intensity_raw=0.1,
        accel_raw=1e8,
        net_t1=-1e8 if flow_reversal else 1e8,
        net_t2=-1e8 if flow_reversal else 1e8,
        flow_reversal=flow_reversal,
        anchor_date=asof - timedelta(days=10),
        anchor_kind="RUN",
        avwap_ref=avwap_ref,
        acceptance_pass=True,
        band_lower=avwap_ref * (1 - P.band_pct),
        band_upper=avwap_ref * (1 + P.band_pct),
        prox=0.9,
    )
    values.update(kw)
    return SymbolFeatures(**values)


def regime(tier: str = "A", asof: date = D3) -> RegimeResult:
    score = {"A": 0.8, "B": 0.55, "C": 0.25}[tier]
    t, mult = tier_of(score, P)
    return RegimeResult(asof, True, True, tier == "A", False, score, t, mult)


def selection(
    session: date,
    tradable: Sequence[str] = ("A",),
    *,
    tier: str = "A",
    extra: Iterable[SymbolFeatures] = (),
    bucket: str = "MID",
    bucket_mult: float = 1.0,
    feats: dict[str, SymbolFeatures] | None = None,
) -> Selection:
    """A watchlist with ``tradable`` tickers (features from :func:`features`) plus ``extra`` non-tradables."""
    rows: dict[str, TickerRow] = {}
    for i, sym in enumerate(tradable):
        f = (feats or {}).get(sym) or features(sym, asof=session - timedelta(days=1))
        rows[sym] = TickerRow(
            symbol=sym,
            sector=f.sector,
            f=f,
            in_universe=True,
            atr30m_est=f.atr30m_est,
            daily_rank=1.0 - i / 100,
            bucket=bucket,
            bucket_mult=bucket_mult,
            tradable=True,
            overflow_rank=i + 1,
            candidate=True,
            flow_pass=True,
            leader_pass=True,
            trend_pass=True,
        )
    for f in extra:
        rows[f.symbol] = TickerRow(symbol=f.symbol, sector=f.sector, f=f, in_universe=True, atr30m_est=f.atr30m_est)
    return Selection(
        session=session,
        asof=session - timedelta(days=1),
        regime=regime(tier, session - timedelta(days=1)),
        sectors={},
        rows=rows,
        tradable=list(tradable),
        positions=[],
        skipped_rules={},
    )


def engine(nav: float = 1_000_000_000, **params: Any) -> NulrimokEngine:
    e = NulrimokEngine(NulrimokParams(**params))
    e.on_account(at(D4, 8, 0), nav)
    return e


def codes(out: Any) -> list[str]:
    return [d.code.value for d in out.decisions]


def decision(out: Any, code: str) -> Any:
    found = [d for d in out.decisions if d.code.value == code]
    assert found, f"{code} not in {codes(out)}"
    return found[0]
