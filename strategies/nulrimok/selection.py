"""The Daily Selection Engine (strategies.md §3.2, N3–N13) as pure functions over LRS data.

:func:`select` takes the per-ticker :class:`~strategies.nulrimok.features.SymbolFeatures` (as of T−1),
the KOSPI closes, the optional inputs (KRW/USD, earnings calendar, blacklist) and the open positions,
and returns a :class:`Selection`: the regime, the sector scores, one :class:`TickerRow` per ticker of
the listing with every score and, when it is not tradable, the reason it was dropped (the first in
:data:`~strategies.nulrimok.decisions.DROP_CODES` order), and the per-position directives (N13).

Pipeline: N3 universe (history, top N by ADV20, earnings/blacklist/halted) → N5 sectors → N6 flow gate
→ N7 leader → N8 trend → candidates → N10 acceptance → N11 rank → tier → tradable top fraction →
N12 conviction buckets (the bottom bucket is skipped).

**[resolved]** choices:

* Cross-sectional statistics (sector baskets, within-sector z-scores and percentiles) are over the
  universe after N3. Tickers without a sector form ``UNKNOWN:<symbol>`` (B8): they get no sector
  score and the "others" weight 0.3.
* A z-score or metric without its input counts 0 (neutral) in a weighted sum.
* Candidates that fail acceptance are dropped before ranking; the tradable count is
  ``ceil(fraction × ranked candidates)``. Under Tier C the candidates are ranked for the artifact but
  none is tradable (``NULRIMOK_DROP_TIER_C``).
* Conviction percentiles (flow, trend strength, the conviction itself) are among the ranked
  candidates; ``leader_pct`` is the within-sector RS percentile of N7.
* "Earnings within the next 3 sessions" = on T or the next 2 weekdays.
* A candidate without any 30m bar in the LRS's last sessions (the broker does not know the symbol
  intraday) cannot be monitored: it is dropped ``NULRIMOK_DROP_NO_DATA`` before ranking.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from statistics import median
from typing import Any

from broker_core.contract.reasons import ReasonCode
from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.features import SymbolFeatures
from strategies.nulrimok.regime import RegimeResult, compute_regime
from strategies.sdk.indicators import minmax_norm, percentiles, zscores

R = ReasonCode


def unknown_sector(symbol: str) -> str:
    return f"UNKNOWN:{symbol}"


def is_unknown(sector: str) -> bool:
    return sector.startswith("UNKNOWN:")


@dataclass(frozen=True, slots=True)
class PositionView:
    """An open Nulrimok position as the DSE sees it (from the engine / OMS allocations)."""

    symbol: str
    qty: int
    avg_price: float
    entry_ts: datetime | None = None
    stop: float | None = None
    setup_tag: str | None = None
    sector: str | None = None
    timers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectionInputs:
    session: date
    """T: the session the watchlist is for."""
    asof: date
    """T−1: the last completed session (features and index closes end here)."""
    features: Mapping[str, SymbolFeatures]
    index_closes: Sequence[float]
    fx_closes: Sequence[float] | None = None
    breadth_members: frozenset[str] | None = None
    earnings: Mapping[str, Sequence[date]] | None = None
    blacklist: Mapping[str, str] | None = None
    positions: Sequence[PositionView] = ()
    atr30m: Mapping[str, float] = field(default_factory=dict)
    """ATR30m(14) from 30m bars where known; replaces the daily-based estimate."""
    skipped_rules: Mapping[str, str] = field(default_factory=dict)
    no_intraday: frozenset[str] = frozenset()
    """Candidates the broker has no intraday bars for (unknown symbol): they cannot be monitored."""


@dataclass(slots=True)
class SectorScore:
    sector: str
    members: int
    basket: list[str]
    flow_trend: float | None
    breadth: float | None
    participation: float | None
    z_flow: float = 0.0
    z_breadth: float = 0.0
    z_participation: float = 0.0
    score: float = 0.0
    rank: int = 0
    weight: float = 0.0


@dataclass(slots=True)
class TickerRow:
    symbol: str
    sector: str
    f: SymbolFeatures
    adv_rank: int | None = None
    in_universe: bool = False
    earnings: bool | None = None
    blacklisted: bool | None = None
    halted: bool = False
    sector_score: float | None = None
    sector_weight: float = 0.0
    intensity_z: float | None = None
    accel_z: float | None = None
    flow_score: float | None = None
    flow_median: float | None = None
    flow_pass: bool = False
    rs: float | None = None
    rs_pct: float | None = None
    leader_pass: bool = False
    trend_pass: bool = False
    candidate: bool = False
    atr30m_est: float | None = None
    daily_rank: float | None = None
    flow_pct: float | None = None
    trend_strength: float | None = None
    conviction: float | None = None
    conviction_pct: float | None = None
    bucket: str | None = None
    bucket_mult: float = 0.0
    recommended_risk_pct: float = 0.0
    tradable: bool = False
    overflow_rank: int | None = None
    drop_reason: ReasonCode | None = None

    def drop(self, code: ReasonCode) -> None:
        if self.drop_reason is None:
            self.drop_reason = code

    @property
    def avwap_ref(self) -> float | None:
        return self.f.avwap_ref

    @property
    def band(self) -> tuple[float, float] | None:
        if self.f.band_lower is None or self.f.band_upper is None:
            return None
        return self.f.band_lower, self.f.band_upper

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "f"}
        out.update({f"f_{k}": v for k, v in self.f.to_json().items() if k not in ("symbol", "sector")})
        out["drop_reason"] = self.drop_reason.value if self.drop_reason else None
        return out


@dataclass(slots=True)
class PositionDirective:
    """N13 per open position."""

    symbol: str
    qty: int
    avg_price: float
    entry_time: str | None
    setup_tag: str | None
    stop: float | None
    timers: dict[str, Any]
    flow_reversal_flag: bool
    exit_directive: str | None
    avwap_ref: float | None
    persistence: float | None
    atr30m_est: float | None


@dataclass(slots=True)
class Selection:
    session: date
    asof: date
    regime: RegimeResult
    sectors: dict[str, SectorScore]
    rows: dict[str, TickerRow]
    tradable: list[str]
    """Tradable tickers by daily_rank, best first (the monitoring order after held positions)."""
    positions: list[PositionDirective]
    skipped_rules: dict[str, str]

    def counts(self) -> dict[str, int]:
        """The DSE funnel: how many tickers reached each stage and why the rest dropped."""
        rows = self.rows.values()
        out = {
            "listing": len(self.rows),
            "universe": sum(r.in_universe and r.drop_reason not in _EVENT_DROPS for r in rows),
            "flow_pass": sum(r.flow_pass for r in rows),
            "leader_pass": sum(r.leader_pass for r in rows),
            "trend_pass": sum(r.trend_pass for r in rows),
            "candidates": sum(r.candidate for r in rows),
            "ranked": sum(r.daily_rank is not None for r in rows),
            "tradable": len(self.tradable),
        }
        for code in R:
            if code.name.startswith("NULRIMOK_DROP_"):
                n = sum(r.drop_reason is code for r in rows)
                if n:
                    out[code.value] = n
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session.isoformat(),
            "asof": self.asof.isoformat(),
            "regime": self.regime.to_json(),
            "sectors": [asdict(s) for s in sorted(self.sectors.values(), key=lambda s: s.rank)],
            "tradable": list(self.tradable),
            "counts": self.counts(),
            "skipped_rules": dict(self.skipped_rules),
            "tickers": [self.rows[s].to_json() for s in sorted(self.rows)],
            "positions": [asdict(p) for p in self.positions],
        }


_EVENT_DROPS = (R.NULRIMOK_DROP_EARNINGS, R.NULRIMOK_DROP_BLACKLIST, R.NULRIMOK_DROP_HALTED)


def next_weekdays(start: date, n: int) -> list[date]:
    """``start`` (if a weekday) and the following weekdays, ``n`` days in all."""
    out: list[date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def rank_weight(rank: int, p: NulrimokParams) -> float:
    """N5: 1st 1.0, 2nd 0.8, 3rd 0.6, others 0.3 (``rank`` is 1-based; 0 = no sector score)."""
    if 1 <= rank <= len(p.sector_rank_weights):
        return p.sector_rank_weights[rank - 1]
    return p.sector_other_weight


def bucket_of(pct: float, p: NulrimokParams) -> tuple[str, float]:
    """N12: top 20% 1.5R, 20–50% 1.0R, 50–80% 0.7R, bottom 20% skip (``pct`` = conviction percentile)."""
    if pct >= p.bucket_top_pct:
        return "TOP", p.bucket_top_mult
    if pct >= p.bucket_mid_pct:
        return "MID", p.bucket_mid_mult
    if pct >= p.bucket_low_pct:
        return "LOW", p.bucket_low_mult
    return "SKIP", 0.0


def sector_scores(universe: Sequence[TickerRow], p: NulrimokParams) -> dict[str, SectorScore]:
    """N5 over the universe: basket = 15 most liquid members; z across the (known) sectors."""
    by_sector: dict[str, list[TickerRow]] = defaultdict(list)
    for r in universe:
        if not is_unknown(r.sector):
            by_sector[r.sector].append(r)
    out: dict[str, SectorScore] = {}
    for sector, members in sorted(by_sector.items()):
        basket = sorted(members, key=lambda r: (-(r.f.adv20 or 0.0), r.symbol))[: p.sector_basket]
        fs = [r.f for r in basket]
        flow_in = [(f.foreign_sum20, f.value_sum20) for f in fs if f.foreign_sum20 is not None and f.value_sum20]
        flow_trend = sum(a for a, _ in flow_in) / sum(b for _, b in flow_in) if flow_in else None
        above = [f.above_sma20 for f in fs if f.above_sma20 is not None]
        out[sector] = SectorScore(
            sector=sector,
            members=len(members),
            basket=[r.symbol for r in basket],
            flow_trend=flow_trend,
            breadth=sum(above) / len(above) if above else None,
            participation=sum((f.persistence or 0.0) >= p.persistence_min for f in fs) / len(fs) if fs else None,
        )
    scores = list(out.values())
    for attr, z_attr in (("flow_trend", "z_flow"), ("breadth", "z_breadth"), ("participation", "z_participation")):
        have = [s for s in scores if getattr(s, attr) is not None]
        for s, z in zip(have, zscores([getattr(s, attr) for s in have]), strict=True):
            setattr(s, z_attr, z)
    for s in scores:
        s.score = (
            p.sector_w_flow * s.z_flow + p.sector_w_breadth * s.z_breadth + p.sector_w_participation * s.z_participation
        )
    for i, s in enumerate(sorted(scores, key=lambda s: (-s.score, s.sector)), start=1):
        s.rank = i
        s.weight = rank_weight(i, p)
    return out


def _flow_and_leader(
    universe: Sequence[TickerRow], sectors: Mapping[str, SectorScore], leader_min: float, p: NulrimokParams
) -> None:
    """N6 flow gate and N7 leader, both within sector."""
    by_sector: dict[str, list[TickerRow]] = defaultdict(list)
    for r in universe:
        by_sector[r.sector].append(r)
    rows_by_symbol = {r.symbol: r for r in universe}
    for sector, members in by_sector.items():
        for attr, out_attr in (("intensity_raw", "intensity_z"), ("accel_raw", "accel_z")):
            have = [r for r in members if getattr(r.f, attr) is not None]
            for r, z in zip(have, zscores([getattr(r.f, attr) for r in have]), strict=True):
                setattr(r, out_attr, z)
        scored = [r for r in members if r.f.persistence is not None]
        for r in scored:
            assert r.f.persistence is not None
            r.flow_score = (
                p.flow_w_persistence * r.f.persistence
                + p.flow_w_intensity * (r.intensity_z or 0.0)
                + p.flow_w_accel * (r.accel_z or 0.0)
            )
        if scored:
            med = median(r.flow_score for r in scored if r.flow_score is not None)
            for r in scored:
                assert r.flow_score is not None and r.f.persistence is not None
                r.flow_median = med
                r.flow_pass = r.f.persistence >= p.persistence_min and r.flow_score > med
        basket_syms = sectors[sector].basket if sector in sectors else [m.symbol for m in members]
        basket = [rows_by_symbol[s].f for s in basket_syms if s in rows_by_symbol]
        b20 = [f.r20 for f in basket if f.r20 is not None]
        b60 = [f.r60 for f in basket if f.r60 is not None]
        if not b20 or not b60:
            continue
        m20, m60 = sum(b20) / len(b20), sum(b60) / len(b60)
        with_rs = [r for r in members if r.f.r20 is not None and r.f.r60 is not None]
        for r in with_rs:
            assert r.f.r20 is not None and r.f.r60 is not None
            r.rs = 0.5 * ((r.f.r20 - m20) + (r.f.r60 - m60))
        for r, pct in zip(with_rs, percentiles([r.rs or 0.0 for r in with_rs]), strict=True):
            r.rs_pct = pct
            r.leader_pass = pct >= leader_min


def select(inputs: SelectionInputs, p: NulrimokParams) -> Selection:
    """N3–N13 for session ``inputs.session`` (see the module docstring)."""
    feats = inputs.features
    members = inputs.breadth_members
    breadth_flags = [
        bool(f.above_sma20)
        for s, f in sorted(feats.items())
        if f.history_ok and f.above_sma20 is not None and (members is None or s in members)
    ]
    regime = compute_regime(inputs.asof, inputs.index_closes, breadth_flags, inputs.fx_closes, p)
    rows = {
        s: TickerRow(symbol=s, sector=f.sector or unknown_sector(s), f=f, halted=f.halted) for s, f in feats.items()
    }
    for r in rows.values():
        r.atr30m_est = inputs.atr30m.get(r.symbol, r.f.atr30m_est)

    # ---- N3 universe
    with_history = [r for r in rows.values() if r.f.history_ok and r.f.adv20 is not None]
    for r in rows.values():
        if not (r.f.history_ok and r.f.adv20 is not None):
            r.drop(R.NULRIMOK_DROP_NO_DATA)
    for i, r in enumerate(sorted(with_history, key=lambda r: (-(r.f.adv20 or 0.0), r.symbol)), start=1):
        r.adv_rank = i
        r.in_universe = i <= p.universe_top_n
        if not r.in_universe:
            r.drop(R.NULRIMOK_DROP_ADV)
    window = set(next_weekdays(inputs.session, p.earnings_sessions))
    for r in rows.values():
        if not r.in_universe:
            continue
        if inputs.earnings is not None:
            r.earnings = any(d in window for d in inputs.earnings.get(r.symbol, ()))
            if r.earnings:
                r.drop(R.NULRIMOK_DROP_EARNINGS)
        if inputs.blacklist is not None:
            r.blacklisted = r.symbol in inputs.blacklist
            if r.blacklisted:
                r.drop(R.NULRIMOK_DROP_BLACKLIST)
        if r.halted:
            r.drop(R.NULRIMOK_DROP_HALTED)
    universe = [r for r in rows.values() if r.in_universe and r.drop_reason is None]

    # ---- N5–N8
    sectors = sector_scores(universe, p)
    for r in universe:
        s = sectors.get(r.sector)
        r.sector_score = s.score if s else None
        r.sector_weight = s.weight if s else p.sector_other_weight
    leader_min = p.leader_pct_a if regime.tier == "A" else p.leader_pct_b
    _flow_and_leader(universe, sectors, leader_min, p)
    for r in universe:
        r.trend_pass = r.f.trend_ok
        r.candidate = r.flow_pass and r.leader_pass and r.trend_pass
        if not r.flow_pass:
            r.drop(R.NULRIMOK_DROP_FLOW)
        elif not r.leader_pass:
            r.drop(R.NULRIMOK_DROP_LEADER)
        elif not r.trend_pass:
            r.drop(R.NULRIMOK_DROP_TREND)
        elif r.symbol in inputs.no_intraday:
            r.drop(R.NULRIMOK_DROP_NO_DATA)
        elif not (r.f.acceptance_pass and r.f.avwap_ref):
            r.drop(R.NULRIMOK_DROP_ACCEPTANCE)

    # ---- N11 rank, N12 conviction, tradable
    ranked = sorted((r for r in universe if r.candidate and r.drop_reason is None), key=lambda r: r.symbol)
    if ranked:
        nf = minmax_norm([r.flow_score or 0.0 for r in ranked])
        nr = minmax_norm([r.rs_pct or 0.0 for r in ranked])
        fp = percentiles([r.flow_score or 0.0 for r in ranked])
        tp = percentiles([r.f.trend_raw or 0.0 for r in ranked])
        for r, a, b, c, d in zip(ranked, nf, nr, fp, tp, strict=True):
            r.daily_rank = (
                p.rank_w_flow * a
                + p.rank_w_rs * b
                + p.rank_w_sector * r.sector_weight
                + p.rank_w_prox * (r.f.prox or 0.0)
            )
            r.flow_pct, r.trend_strength = c, d
            r.conviction = (
                p.conv_w_flow * c
                + p.conv_w_leader * (r.rs_pct or 0.0)
                + p.conv_w_sector * r.sector_weight
                + p.conv_w_trend * d
            )
        for r, pct in zip(ranked, percentiles([r.conviction or 0.0 for r in ranked]), strict=True):
            r.conviction_pct = pct
            r.bucket, r.bucket_mult = bucket_of(pct, p)
            r.recommended_risk_pct = p.base_risk_pct * r.bucket_mult * regime.risk_mult
    frac = {"A": p.tradable_frac_a, "B": p.tradable_frac_b}.get(regime.tier, 0.0)
    n_trad = math.ceil(frac * len(ranked) - 1e-9) if frac > 0 else 0
    order = sorted(ranked, key=lambda r: (-(r.daily_rank or 0.0), r.symbol))
    tradable: list[str] = []
    for i, r in enumerate(order):
        if regime.tier == "C":
            r.drop(R.NULRIMOK_DROP_TIER_C)
        elif i >= n_trad:
            r.drop(R.NULRIMOK_DROP_RANK)
        elif r.bucket == "SKIP":
            r.drop(R.NULRIMOK_DROP_CONVICTION)
        else:
            r.tradable = True
            tradable.append(r.symbol)
            r.overflow_rank = len(tradable)

    positions = []
    for pos in inputs.positions:
        f = feats.get(pos.symbol)
        row = rows.get(pos.symbol)
        flag = bool(f and f.flow_reversal)
        positions.append(
            PositionDirective(
                symbol=pos.symbol,
                qty=pos.qty,
                avg_price=pos.avg_price,
                entry_time=pos.entry_ts.isoformat() if pos.entry_ts else None,
                setup_tag=pos.setup_tag,
                stop=pos.stop,
                timers=dict(pos.timers),
                flow_reversal_flag=flag,
                exit_directive="EXIT_AT_OPEN" if flag else None,
                avwap_ref=f.avwap_ref if f else None,
                persistence=f.persistence if f else None,
                atr30m_est=row.atr30m_est if row else None,
            )
        )
    return Selection(
        session=inputs.session,
        asof=inputs.asof,
        regime=regime,
        sectors=sectors,
        rows=rows,
        tradable=tradable,
        positions=positions,
        skipped_rules=dict(inputs.skipped_rules),
    )
