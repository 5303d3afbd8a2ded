"""K1–K2: the KMP universe and the per-symbol premarket cache (built before 09:00).

Inputs are plain lists the caller fetched through the OMS market-data proxy:

* daily bars of the symbol, oldest first, ending with the **prior** session (objects or mappings
  with ``close``; ``date`` optional) — at least ``sma_slow`` (60) closes for SMA60 and
  ``sma_fast + slope_lag`` (25) for the SMA20 slope; 65 sessions cover both;
* 1m bars of the previous sessions (any object :mod:`strategies.kmp.minutes` understands), at least
  the 09:00–09:59 minutes of the last 20 sessions.

**[resolved]** choices:

* The sessions of a baseline are the distinct dates present in the minute history (or the
  ``sessions`` list the caller passes, e.g. from the KRX calendar), the last 14 (value) / 20
  (volume) of them; minutes without a bar count as 0 (B2), so
  ``vol1m_base = Σ V(09:00–09:59) / (sessions · 60)`` and ``value_base`` is the mean over sessions of
  the 09:00–09:14 traded value.
* Too little daily history for SMA60 or the slope → ``trend_ok = False``.
* Symbol kinds: explicit flags win; without them, a name containing 스팩/SPAC is a SPAC, a name
  containing ETN is an ETN, a name starting with a known ETF brand is an ETF, and otherwise a
  6-digit code not ending in 0 is a preferred share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from strategies.kmp.config import KmpParams, UniverseConfig
from strategies.kmp.minutes import bar_start, bar_value, field_of
from strategies.kmp.timing import minute_of_time
from strategies.sdk.indicators import sma, sma_slope

ETF_BRANDS = (
    "KODEX",
    "TIGER",
    "KBSTAR",
    "ARIRANG",
    "HANARO",
    "KOSEF",
    "ACE ",
    "SOL ",
    "RISE ",
    "PLUS ",
    "KIWOOM",
    "TIMEFOLIO",
    "WOORI",
    "1Q ",
    "BNK ",
    "FOCUS",
    "TREX",
    "마이티",
    "히어로즈",
)
EXCLUDED_KINDS = frozenset({"ETF", "ETN", "SPAC", "PREFERRED", "REIT", "FUND", "WARRANT"})


def unknown_sector(symbol: str) -> str:
    """B8: a symbol missing from the sector map is its own sector."""
    return f"UNKNOWN:{symbol}"


@dataclass(frozen=True, slots=True)
class SymbolMeta:
    """Listing facts of one symbol (K1)."""

    symbol: str
    name: str = ""
    market: str = "KOSPI"
    sector: str | None = None
    kind: str | None = None
    """STOCK, ETF, ETN, SPAC, PREFERRED, ... (None = infer from code and name)."""
    is_admin_issue: bool = False
    """관리종목 (administrative issue)."""
    is_halted: bool = False


def infer_kind(symbol: str, name: str = "") -> str:
    upper = name.upper()
    if "스팩" in name or "SPAC" in upper:
        return "SPAC"
    if "ETN" in upper:
        return "ETN"
    if any(upper.startswith(b) for b in ETF_BRANDS):
        return "ETF"
    if len(symbol) == 6 and symbol.isdigit() and symbol[-1] != "0":
        return "PREFERRED"
    return "STOCK"


def drop_reason(meta: SymbolMeta) -> str | None:
    """Why K1 drops the symbol, or None when it is an eligible common share."""
    kind = (meta.kind or infer_kind(meta.symbol, meta.name)).upper()
    if kind in EXCLUDED_KINDS or kind != "STOCK":
        return kind
    if meta.is_admin_issue:
        return "ADMIN_ISSUE"
    if meta.is_halted:
        return "HALTED"
    return None


def select_universe(
    metas: Iterable[SymbolMeta], cfg: UniverseConfig | None = None
) -> tuple[list[SymbolMeta], dict[str, str]]:
    """K1 over the caller's listing; returns (kept, {symbol: drop reason})."""
    cfg = cfg or UniverseConfig()
    wanted = set(cfg.symbols)
    excluded = set(cfg.exclude)
    markets = {m.upper() for m in cfg.markets}
    kept: list[SymbolMeta] = []
    dropped: dict[str, str] = {}
    for meta in sorted(metas, key=lambda m: m.symbol):
        if wanted and meta.symbol not in wanted:
            continue
        if meta.symbol in excluded:
            dropped[meta.symbol] = "EXCLUDED"
            continue
        if markets and meta.market.upper() not in markets:
            dropped[meta.symbol] = f"MARKET_{meta.market}"
            continue
        reason = drop_reason(meta)
        if reason is not None:
            dropped[meta.symbol] = reason
            continue
        kept.append(meta)
    return kept, dropped


@dataclass(frozen=True, slots=True)
class TrendStats:
    close: float | None
    sma_fast: float | None
    sma_slow: float | None
    slope_fast: float | None
    trend_ok: bool


def trend_stats(closes: Sequence[float], p: KmpParams | None = None) -> TrendStats:
    """K2: ``trend_ok = close > SMA20 ∧ SMA20 ≥ SMA60 ∧ slope(SMA20) ≥ 0`` on daily closes."""
    p = p or KmpParams()
    close = closes[-1] if closes else None
    s20 = sma(closes, p.sma_fast) if closes else None
    s60 = sma(closes, p.sma_slow) if closes else None
    slope = sma_slope(closes, p.sma_fast, p.slope_lag)
    ok = (
        close is not None
        and s20 is not None
        and s60 is not None
        and slope is not None
        and close > s20
        and s20 >= s60
        and slope >= 0
    )
    return TrendStats(close, s20, s60, slope, ok)


def _by_session(minute_bars: Iterable[Any]) -> dict[date, list[tuple[int, Any]]]:
    """Bars per session day, each with its start as minutes since midnight KST (computed once per bar)."""
    out: dict[date, list[tuple[int, Any]]] = defaultdict(list)
    for b in minute_bars:
        s = bar_start(b)
        out[s.date()].append((s.hour * 60 + s.minute, b))
    return out


def _last_sessions(
    by_day: dict[date, list[Any]], n: int, sessions: Sequence[date] | None, before: date | None
) -> list[date]:
    days = sorted(set(sessions) if sessions is not None else set(by_day))
    if before is not None:
        days = [d for d in days if d < before]
    return days[-n:]


def value_base(
    minute_bars: Iterable[Any],
    p: KmpParams | None = None,
    sessions: Sequence[date] | None = None,
    before: date | None = None,
) -> float | None:
    """K2: mean over the last 14 sessions of the traded value of the 09:00–09:14 bars."""
    p = p or KmpParams()
    by_day = _by_session(minute_bars)
    days = _last_sessions(by_day, p.value_base_sessions, sessions, before)
    if not days:
        return None
    lo, hi = minute_of_time(p.or_start), minute_of_time(p.or_end)
    totals = []
    for d in days:
        total = 0.0
        for minute, b in by_day.get(d, []):
            if lo <= minute < hi:
                total += bar_value(b)
        totals.append(total)
    return sum(totals) / len(totals)


def vol1m_base(
    minute_bars: Iterable[Any],
    p: KmpParams | None = None,
    sessions: Sequence[date] | None = None,
    before: date | None = None,
) -> float | None:
    """K2: mean 1m volume pooled over all 09:00–09:59 minutes of the last 20 sessions (missing = 0)."""
    p = p or KmpParams()
    by_day = _by_session(minute_bars)
    days = _last_sessions(by_day, p.vol_base_sessions, sessions, before)
    if not days:
        return None
    lo, hi = minute_of_time(p.vol_base_start), minute_of_time(p.vol_base_end)
    total = 0.0
    for d in days:
        for minute, b in by_day.get(d, []):
            if lo <= minute < hi:
                total += float(field_of(b, "volume") or 0)
    return total / (len(days) * (hi - lo))


@dataclass(frozen=True, slots=True)
class SymbolCache:
    """Everything KMP needs about one symbol before the open."""

    symbol: str
    sector: str
    prior_close: float | None
    trend: TrendStats
    value_base: float | None
    vol1m_base: float | None
    market: str = "KOSPI"
    name: str = ""

    @property
    def trend_ok(self) -> bool:
        return self.trend.trend_ok


def build_symbol_cache(
    meta: SymbolMeta | str,
    daily_bars: Sequence[Any],
    minute_bars: Iterable[Any],
    p: KmpParams | None = None,
    *,
    sessions: Sequence[date] | None = None,
    today: date | None = None,
    sector_overrides: dict[str, str] | None = None,
) -> SymbolCache:
    """K2 cache of one symbol. ``today`` (the session being traded) excludes its own bars if present."""
    p = p or KmpParams()
    if isinstance(meta, str):
        meta = SymbolMeta(meta)
    rows = list(daily_bars)
    if today is not None:
        rows = [r for r in rows if (d := _row_date(r)) is None or d < today]
    closes = [float(field_of(r, "close")) for r in rows]
    minutes = list(minute_bars)
    sector = (sector_overrides or {}).get(meta.symbol) or meta.sector or unknown_sector(meta.symbol)
    return SymbolCache(
        symbol=meta.symbol,
        sector=sector,
        prior_close=closes[-1] if closes else None,
        trend=trend_stats(closes, p),
        value_base=value_base(minutes, p, sessions, today),
        vol1m_base=vol1m_base(minutes, p, sessions, today),
        market=meta.market,
        name=meta.name,
    )


def _row_date(row: Any) -> date | None:
    d = field_of(row, "date")
    if d is None:
        return None
    if isinstance(d, datetime):
        return d.date()
    if isinstance(d, date):
        return d
    if isinstance(d, str):
        return date.fromisoformat(d[:10])
    return None
