"""Gates, filters and the watchlist (strategies.md §4.2 I5–I10, ordering of I4). Pure: bars in, verdicts out.

``evaluate(candidate, daily, info, session, params)`` applies, in order: conviction (I5), data
sufficiency, trend gate (I6), hard rejects (I7: ADTV20, market cap, earnings window, gap-reversal
rate), then tiers (I9) and soft multipliers (I10). A passing candidate becomes a :class:`WatchItem`
carrying every multiplier; a failing one a :class:`Rejection` with its reason code and inputs.
:func:`order_watchlist` sorts by (conviction HIGH first, ADTV20 descending) and numbers the ranks.

**[resolved]** choices where §4.2 is silent:

* ADTV20 = mean daily traded value (₩) of the last 20 sessions before the session; a daily bar
  without a value uses typical price × volume (as :meth:`strategies.sdk.bars.Bar.from_rest` does).
* Earnings "within 5 trading days": an earnings date on the session itself or on any of the next
  4 trading days; a symbol without known earnings dates is not filtered (logged ``unknown``).
* Market cap unknown (the listing master has none) → that reject is not applied (logged ``unknown``).
* The gap-reversal lookback is the last 60 sessions before the session; the first of them needs
  the close before it, so 61 daily bars give the full window.
* Run-up (I10) = ``pct(C[T−1], C[T−1−5])`` > 20%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from broker_core.contract.reasons import ReasonCode
from strategies.pcim.config import PcimParams
from strategies.sdk.bars import Bar
from strategies.sdk.indicators import atr, pct, sma

CONVICTIONS = ("HIGH", "MEDIUM")


@dataclass(frozen=True, slots=True)
class CandidateRef:
    """One video's recommendation of the symbol (I3: all refs are kept)."""

    video_id: str
    channel_id: str
    influencer: str
    raw_name: str
    conviction: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A resolved ticker from the night's videos: highest conviction over its refs (I3)."""

    symbol: str
    name: str
    conviction: str
    refs: tuple[CandidateRef, ...] = ()

    @property
    def influencers(self) -> list[str]:
        return sorted({r.influencer for r in self.refs})

    @property
    def video_ids(self) -> list[str]:
        return sorted({r.video_id for r in self.refs})


@dataclass(frozen=True, slots=True)
class ListingInfo:
    """What the listing master knows about a symbol beyond its name (both optional)."""

    market_cap: float | None = None
    earnings_dates: tuple[date, ...] = ()
    market: str | None = None


@dataclass(frozen=True, slots=True)
class GapStats:
    """I8 over the lookback: events (gap ≥ +1%), reversals (C < O on an event day), rate, flag."""

    events: int
    reversals: int
    rate: float | None
    insufficient_sample: bool
    first: date | None
    last: date | None
    sessions: int

    def fields(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "reversals": self.reversals,
            "rate": None if self.rate is None else round(self.rate, 4),
            "insufficient_sample": self.insufficient_sample,
            "lookback_first": str(self.first) if self.first else None,
            "lookback_last": str(self.last) if self.last else None,
            "sessions": self.sessions,
        }


@dataclass(frozen=True, slots=True)
class WatchItem:
    """A watchlist entry for ``session`` with every input the morning and the sizing need."""

    session: date
    symbol: str
    name: str
    conviction: str
    conviction_mult: float
    prior_close: float
    sma20: float
    adtv20: float
    atr20: float
    tier: str
    tier_mult: float
    soft_mult: float
    multipliers: dict[str, float]
    gap: GapStats
    runup_pct: float | None
    market_cap: float | None
    influencers: tuple[str, ...]
    video_ids: tuple[str, ...]
    rank: int = 0
    a_volume_baseline: float | None = None
    """Median 09:00–09:03 volume over the last 20 sessions (I15); filled in by the wiring."""

    def fields(self) -> dict[str, Any]:
        return {
            "session": str(self.session),
            "rank": self.rank,
            "name": self.name,
            "conviction": self.conviction,
            "prior_close": self.prior_close,
            "sma20": round(self.sma20, 2),
            "adtv20": round(self.adtv20),
            "atr20": round(self.atr20, 2),
            "tier": self.tier,
            "multipliers": {k: round(v, 4) for k, v in self.multipliers.items()},
            "runup_pct": None if self.runup_pct is None else round(self.runup_pct, 4),
            "market_cap": self.market_cap,
            "gap_reversal": self.gap.fields(),
            "influencers": list(self.influencers),
            "videos": list(self.video_ids),
            "a_volume_baseline": self.a_volume_baseline,
        }


def item_to_json(item: WatchItem) -> dict[str, Any]:
    gap = item.gap
    return {
        "session": str(item.session),
        "symbol": item.symbol,
        "name": item.name,
        "conviction": item.conviction,
        "conviction_mult": item.conviction_mult,
        "prior_close": item.prior_close,
        "sma20": item.sma20,
        "adtv20": item.adtv20,
        "atr20": item.atr20,
        "tier": item.tier,
        "tier_mult": item.tier_mult,
        "soft_mult": item.soft_mult,
        "multipliers": dict(item.multipliers),
        "gap": {
            "events": gap.events,
            "reversals": gap.reversals,
            "rate": gap.rate,
            "insufficient_sample": gap.insufficient_sample,
            "first": str(gap.first) if gap.first else None,
            "last": str(gap.last) if gap.last else None,
            "sessions": gap.sessions,
        },
        "runup_pct": item.runup_pct,
        "market_cap": item.market_cap,
        "influencers": list(item.influencers),
        "video_ids": list(item.video_ids),
        "rank": item.rank,
        "a_volume_baseline": item.a_volume_baseline,
    }


def item_from_json(data: dict[str, Any]) -> WatchItem:
    g = data["gap"]
    gap = GapStats(
        events=int(g["events"]),
        reversals=int(g["reversals"]),
        rate=g.get("rate"),
        insufficient_sample=bool(g["insufficient_sample"]),
        first=date.fromisoformat(g["first"]) if g.get("first") else None,
        last=date.fromisoformat(g["last"]) if g.get("last") else None,
        sessions=int(g.get("sessions", 0)),
    )
    return WatchItem(
        session=date.fromisoformat(data["session"]),
        symbol=data["symbol"],
        name=data.get("name", ""),
        conviction=data["conviction"],
        conviction_mult=float(data["conviction_mult"]),
        prior_close=float(data["prior_close"]),
        sma20=float(data["sma20"]),
        adtv20=float(data["adtv20"]),
        atr20=float(data["atr20"]),
        tier=data["tier"],
        tier_mult=float(data["tier_mult"]),
        soft_mult=float(data["soft_mult"]),
        multipliers={k: float(v) for k, v in data.get("multipliers", {}).items()},
        gap=gap,
        runup_pct=data.get("runup_pct"),
        market_cap=data.get("market_cap"),
        influencers=tuple(data.get("influencers", ())),
        video_ids=tuple(data.get("video_ids", ())),
        rank=int(data.get("rank", 0)),
        a_volume_baseline=data.get("a_volume_baseline"),
    )


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str
    code: ReasonCode
    fields: dict[str, Any] = field(default_factory=dict)


def traded_value(bar: Bar) -> float:
    if bar.value and bar.value > 0:
        return float(bar.value)
    return (bar.high + bar.low + bar.close) / 3.0 * bar.volume


def adtv(daily: Sequence[Bar], n: int) -> float | None:
    window = list(daily)[-n:]
    if len(window) < n:
        return None
    return sum(traded_value(b) for b in window) / n


def gap_reversal(daily: Sequence[Bar], params: PcimParams) -> GapStats:
    """I8 over the last ``gap_lookback`` sessions of ``daily`` (all before the session)."""
    bars = list(daily)
    window = bars[-params.gap_lookback :]
    start = len(bars) - len(window)
    events = reversals = 0
    for i, b in enumerate(window):
        j = start + i
        if j == 0:
            continue
        prev_close = bars[j - 1].close
        if prev_close > 0 and pct(b.open, prev_close) >= params.gap_event_pct - 1e-12:
            events += 1
            if b.close < b.open:
                reversals += 1
    rate = reversals / events if events else None
    return GapStats(
        events=events,
        reversals=reversals,
        rate=rate,
        insufficient_sample=events < params.gap_min_events,
        first=window[0].start.date() if window else None,
        last=window[-1].start.date() if window else None,
        sessions=len(window),
    )


def tier_of(adtv20: float, params: PcimParams) -> tuple[str, float] | None:
    """I9: (tier, multiplier) or None below the T3 floor."""
    if adtv20 >= params.tier1_adtv:
        return "T1", params.tier1_mult
    if adtv20 >= params.tier2_adtv:
        return "T2", params.tier2_mult
    if adtv20 >= params.adtv_min:
        return "T3", params.tier3_mult
    return None


def soft_multipliers(adtv20: float, runup: float | None, params: PcimParams) -> dict[str, float]:
    """I10: each soft penalty that applies, by name (their product is the soft multiplier)."""
    out: dict[str, float] = {}
    if params.adtv_min <= adtv20 < params.soft_adtv_max:
        out["soft_adtv"] = params.soft_adtv_mult
    if runup is not None and runup > params.soft_runup_pct:
        out["soft_runup"] = params.soft_runup_mult
    return out


def earnings_hit(session: date, dates: Sequence[date], window_days: Sequence[date]) -> date | None:
    """The first earnings date among ``window_days`` (the session and the trading days after it)."""
    wanted = set(window_days)
    return next((d for d in sorted(dates) if d in wanted), None)


def evaluate(
    candidate: Candidate,
    daily: Sequence[Bar],
    info: ListingInfo,
    session: date,
    params: PcimParams,
    *,
    earnings_days: Sequence[date] = (),
) -> WatchItem | Rejection:
    """§4.2 for one candidate. ``daily``: daily bars strictly before ``session``, oldest first.
    ``earnings_days``: the session and the following trading days (``earnings_window_days`` of them)."""
    sym = candidate.symbol
    conv_mult = params.conviction_mult(candidate.conviction)
    if conv_mult is None:
        return Rejection(sym, ReasonCode.PCIM_BAD_CONVICTION, {"conviction": candidate.conviction})
    bars = sorted((b for b in daily if b.start.date() < session), key=lambda b: b.start)
    need = max(params.trend_sma, params.adtv_sessions, params.atr_period, params.soft_runup_sessions + 1)
    if len(bars) < need:
        return Rejection(sym, ReasonCode.PCIM_NO_DATA, {"daily_bars": len(bars), "needed": need})
    closes = [b.close for b in bars]
    prior_close = closes[-1]
    sma20 = sma(closes, params.trend_sma)
    assert sma20 is not None
    if prior_close <= sma20:
        return Rejection(
            sym, ReasonCode.PCIM_TREND_GATE, {"prior_close": prior_close, "sma20": round(sma20, 2), "pass": False}
        )
    adtv20 = adtv(bars, params.adtv_sessions)
    assert adtv20 is not None
    if adtv20 < params.adtv_min:
        return Rejection(sym, ReasonCode.PCIM_REJECT_ADTV, {"adtv20": round(adtv20), "min": params.adtv_min})
    if info.market_cap is not None and not params.market_cap_min <= info.market_cap <= params.market_cap_max:
        return Rejection(
            sym,
            ReasonCode.PCIM_REJECT_MARKET_CAP,
            {"market_cap": info.market_cap, "min": params.market_cap_min, "max": params.market_cap_max},
        )
    hit = earnings_hit(session, info.earnings_dates, earnings_days) if info.earnings_dates else None
    if hit is not None:
        return Rejection(sym, ReasonCode.PCIM_REJECT_EARNINGS, {"earnings_date": str(hit)})
    gap = gap_reversal(bars, params)
    if not gap.insufficient_sample and gap.rate is not None and gap.rate > params.gap_reversal_max:
        return Rejection(sym, ReasonCode.PCIM_REJECT_GAP_REVERSAL, {**gap.fields(), "max": params.gap_reversal_max})
    tier = tier_of(adtv20, params)
    assert tier is not None
    atr20 = atr(bars[-(params.atr_period * 3) :], params.atr_period)
    if atr20 is None or atr20 <= 0:
        return Rejection(sym, ReasonCode.PCIM_NO_DATA, {"atr20": atr20})
    runup = pct(closes[-1], closes[-1 - params.soft_runup_sessions])
    soft = soft_multipliers(adtv20, runup, params)
    soft_mult = 1.0
    for v in soft.values():
        soft_mult *= v
    multipliers = {"conviction": conv_mult, "tier": tier[1], **soft, "soft": soft_mult}
    return WatchItem(
        session=session,
        symbol=sym,
        name=candidate.name,
        conviction=candidate.conviction,
        conviction_mult=conv_mult,
        prior_close=prior_close,
        sma20=sma20,
        adtv20=adtv20,
        atr20=atr20,
        tier=tier[0],
        tier_mult=tier[1],
        soft_mult=soft_mult,
        multipliers=multipliers,
        gap=gap,
        runup_pct=runup,
        market_cap=info.market_cap,
        influencers=tuple(candidate.influencers),
        video_ids=tuple(candidate.video_ids),
    )


def order_watchlist(items: Sequence[WatchItem]) -> list[WatchItem]:
    """I4: (conviction HIGH first, ADTV20 descending), ranks 1..n."""
    ranked = sorted(items, key=lambda i: (CONVICTIONS.index(i.conviction), -i.adtv20, i.symbol))
    return [replace(item, rank=n) for n, item in enumerate(ranked, start=1)]
