"""P1: the KPR universe and the per-symbol premarket cache (pure; the wiring fetches the bars).

Per symbol, from the OMS proxy's daily bars (oldest first, ending with the prior session) and the
1m bars of past sessions:

* ``prior_close`` — close of the last daily bar before the day;
* ``adv20`` — mean daily volume in **shares** of the last 20 sessions (P1 says shares; §0 B9's ADV20
  in ₩ is a different quantity);
* ``atr20`` — B5 Wilder ATR(20) of the daily bars (seeded with the mean of the first 20 TRs);
* ``profile`` — the 20-day intraday cumulative-volume profile: for each minute of the session
  (09:00 … 15:30, index 0 … 390) the mean over sessions of the share of that day's volume traded in
  bars that start at or before the minute. A minute without a bar adds nothing (B2).

A value that cannot be built drops the symbol with a reason (``NO_DAILY``, ``SHORT_DAILY``,
``NO_PRIOR_CLOSE``, ``NO_VOLUME``, ``NO_VOLUME_PROFILE``); the engine logs every drop.

**[resolved]** a session with no minute bars (or zero volume) is left out of the profile; fewer
than ``profile_min_sessions`` usable sessions → ``NO_VOLUME_PROFILE``. The universe filter keeps
common shares: a 6-digit code not ending in 0 is a preferred share and dropped (``PREFERRED``), as
are symbols in ``exclude``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from strategies.kpr.config import KprParams, UniverseConfig
from strategies.kpr.minutes import bar_start, field_of
from strategies.sdk.indicators import atr

PROFILE_MINUTES = 391
"""09:00 … 15:30 inclusive (the closing-auction bar is labelled 15:30)."""
_OPEN_MINUTE = 9 * 60


def unknown_sector(symbol: str) -> str:
    """B8: a symbol missing from the sector map is its own sector."""
    return f"UNKNOWN:{symbol}"


@dataclass(frozen=True, slots=True)
class SymbolMeta:
    symbol: str
    sector: str | None = None
    market: str = "KOSPI"


def select_universe(
    metas: Iterable[SymbolMeta], cfg: UniverseConfig | None = None
) -> tuple[list[SymbolMeta], dict[str, str]]:
    """P1 over the caller's listing; returns (kept, {symbol: drop reason})."""
    cfg = cfg or UniverseConfig()
    wanted = set(cfg.symbols)
    excluded = set(cfg.exclude)
    kept: list[SymbolMeta] = []
    dropped: dict[str, str] = {}
    for meta in sorted(metas, key=lambda m: m.symbol):
        if wanted and meta.symbol not in wanted:
            continue
        if meta.symbol in excluded:
            dropped[meta.symbol] = "EXCLUDED"
        elif len(meta.symbol) == 6 and meta.symbol.isdigit() and meta.symbol[-1] != "0":
            dropped[meta.symbol] = "PREFERRED"
        else:
            kept.append(meta)
    return kept, dropped


def session_cumulative(minute_bars: Iterable[Any]) -> list[float]:
    """Cumulative volume by session minute index (0 = 09:00) of one session's 1m bars."""
    per = [0.0] * PROFILE_MINUTES
    for b in minute_bars:
        s = bar_start(b)
        i = s.hour * 60 + s.minute - _OPEN_MINUTE
        if 0 <= i < PROFILE_MINUTES:
            per[i] += float(field_of(b, "volume") or 0)
    total = 0.0
    for i, v in enumerate(per):
        total += v
        per[i] = total
    return per


def volume_profile(sessions: Iterable[Sequence[float]]) -> tuple[tuple[float, ...], int]:
    """Mean cumulative share of daily volume by minute over sessions with volume → (profile, sessions used)."""
    acc = [0.0] * PROFILE_MINUTES
    n = 0
    for cum in sessions:
        total = cum[-1] if cum else 0.0
        if total <= 0:
            continue
        n += 1
        for i, v in enumerate(cum):
            acc[i] += v / total
    if n == 0:
        return (), 0
    return tuple(a / n for a in acc), n


def expected_frac(profile: Sequence[float], minute: int) -> float | None:
    """Expected share of daily volume traded by the end of the bar starting at ``minute`` (minute of day)."""
    if not profile:
        return None
    i = min(max(minute - _OPEN_MINUTE, 0), len(profile) - 1)
    return profile[i]


@dataclass(frozen=True, slots=True)
class SymbolCache:
    """Everything KPR needs about one symbol before the open (P1)."""

    symbol: str
    sector: str
    market: str
    prior_close: float
    adv20: float
    atr20: float
    profile: tuple[float, ...]
    profile_sessions: int

    def expected_frac(self, minute: int) -> float | None:
        return expected_frac(self.profile, minute)


def daily_stats(daily_bars: Sequence[Any], p: KprParams) -> tuple[float, float, float] | str:
    """(prior_close, adv20 shares, atr20) from daily bars before the day, or the drop reason."""
    rows = list(daily_bars)
    if not rows:
        return "NO_DAILY"
    if len(rows) < max(p.adv_sessions, p.atr_period):
        return "SHORT_DAILY"
    prior = float(field_of(rows[-1], "close") or 0)
    if prior <= 0:
        return "NO_PRIOR_CLOSE"
    vols = [float(field_of(r, "volume") or 0) for r in rows[-p.adv_sessions :]]
    adv = sum(vols) / len(vols)
    if adv <= 0:
        return "NO_VOLUME"
    a = atr(
        [(float(field_of(r, "high")), float(field_of(r, "low")), float(field_of(r, "close"))) for r in rows],
        p.atr_period,
    )
    if a is None:
        return "SHORT_DAILY"
    return prior, adv, a


def build_symbol_cache(
    meta: SymbolMeta,
    daily_bars: Sequence[Any],
    session_cums: Mapping[date, Sequence[float]],
    sessions: Sequence[date],
    p: KprParams,
) -> SymbolCache | str:
    """P1 cache of one symbol, or why it is dropped. ``sessions`` = the last profile sessions before the day."""
    stats = daily_stats(daily_bars, p)
    if isinstance(stats, str):
        return stats
    prior, adv, a = stats
    profile, used = volume_profile(session_cums[d] for d in sessions[-p.profile_sessions :] if d in session_cums)
    if used < p.profile_min_sessions:
        return "NO_VOLUME_PROFILE"
    return SymbolCache(
        symbol=meta.symbol,
        sector=meta.sector or unknown_sector(meta.symbol),
        market=meta.market,
        prior_close=prior,
        adv20=adv,
        atr20=a,
        profile=profile,
        profile_sessions=used,
    )
