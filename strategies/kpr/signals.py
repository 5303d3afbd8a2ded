"""P9–P11: the three confidence pillars, and the market program regime of the P8 adder.

* :func:`classify_investor` — InvestorSignal from today's foreign ``f`` and institutional ``i`` net
  buy (₩) against today's traded value TV: STRONG ``f>0 ∧ i>0 ∧ f+i ≥ 2%·TV``; DISTRIBUTE
  ``f<0 ∧ i<0 ∧ |f+i| ≥ 2%·TV``; CONFLICT opposite signs, each ``≥ 1%·TV``; else NEUTRAL.
  :func:`investor_state` adds STALE (no reading, or older than the stale limit).
* MicroPressure: :func:`tick_pressure` (B7 imbalance over 120 s: ``≥ +0.2`` ACCUMULATE, ``≤ −0.2``
  DISTRIBUTE) when the symbol has ≥ 60 s of ticks since subscribing — preferred whenever available;
  else the proxies :func:`volume_surge_accumulates` (P10b) and :func:`bar_strength_accumulates`
  (P10c), which never say DISTRIBUTE.
* :class:`ProgramTracker` — per-stock ProgramSignal from cumulative program net buy (₩): ``≥ +1%·TV``
  and rising over 5 min → ACCUMULATE; ``≤ −1%·TV`` and falling → DISTRIBUTE; else NEUTRAL; STALE when
  the newest sample is older than the stale limit; UNAVAILABLE is the provider mode, not a reading.
* :class:`MarketProgram` — KMP K7's market-wide program EWMA (α 0.35) per KOSPI/KOSDAQ; its regime
  is ``outflow`` when both EWMAs are < 0, and None (unhealthy: skipped) when a feed is missing, failed
  3 times in a row or is older than 180 s.

**[resolved]** "rising over 5 min" = the newest sample is above the newest sample at least 5 min
older (falling: below); with no sample that old the trend is unknown → NEUTRAL. TV ≤ 0 → NEUTRAL.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from strategies.kpr.config import KprParams
from strategies.kpr.minutes import BarView
from strategies.sdk.indicators import cpr

_EPS = 1e-9


class InvestorState(StrEnum):
    STRONG = "STRONG"
    DISTRIBUTE = "DISTRIBUTE"
    CONFLICT = "CONFLICT"
    NEUTRAL = "NEUTRAL"
    STALE = "STALE"


class Micro(StrEnum):
    ACCUMULATE = "ACCUMULATE"
    DISTRIBUTE = "DISTRIBUTE"
    NEUTRAL = "NEUTRAL"


class ProgramState(StrEnum):
    ACCUMULATE = "ACCUMULATE"
    DISTRIBUTE = "DISTRIBUTE"
    NEUTRAL = "NEUTRAL"
    STALE = "STALE"
    UNAVAILABLE = "UNAVAILABLE"


# ----------------------------------------------------------------------------- P9 investor


def classify_investor(foreign: float, inst: float, tv: float, p: KprParams) -> InvestorState:
    """P9 on today's foreign/institutional net buy (₩) and traded value TV (₩)."""
    if tv <= 0:
        return InvestorState.NEUTRAL
    total = foreign + inst
    if foreign > 0 and inst > 0 and total >= p.investor_strong_pct * tv - _EPS:
        return InvestorState.STRONG
    if foreign < 0 and inst < 0 and abs(total) >= p.investor_strong_pct * tv - _EPS:
        return InvestorState.DISTRIBUTE
    floor = p.investor_conflict_pct * tv - _EPS
    if foreign * inst < 0 and abs(foreign) >= floor and abs(inst) >= floor:
        return InvestorState.CONFLICT
    return InvestorState.NEUTRAL


@dataclass(frozen=True, slots=True)
class InvestorReading:
    """Today's net buy (₩) of one symbol as of ``ts``."""

    ts: datetime
    foreign: float
    inst: float


def investor_state(
    reading: InvestorReading | None, tv: float, now: datetime, stale_limit_sec: float, p: KprParams
) -> InvestorState:
    if reading is None or (now - reading.ts).total_seconds() > stale_limit_sec:
        return InvestorState.STALE
    return classify_investor(reading.foreign, reading.inst, tv, p)


# ----------------------------------------------------------------------------- P10 micro pressure


def tick_pressure(imbalance: float | None, p: KprParams) -> Micro | None:
    """P10a: None when undefined (< 60 s of ticks since subscribing, or not streamed)."""
    if imbalance is None:
        return None
    if imbalance >= p.tick_accumulate - _EPS:
        return Micro.ACCUMULATE
    if imbalance <= p.tick_distribute + _EPS:
        return Micro.DISTRIBUTE
    return Micro.NEUTRAL


def volume_surge(cum_volume: float, adv20: float | None, expected: float | None) -> float | None:
    """P10b: ``surge = (cum_vol / ADV20) / expected_frac(t)``."""
    if adv20 is None or adv20 <= 0 or expected is None or expected <= 0:
        return None
    return (cum_volume / adv20) / expected


def volume_surge_accumulates(surge: float | None, bar: BarView, reclaim: float, p: KprParams) -> bool:
    """P10b: surge ≥ 1.3 and reclaim quality (C ≥ reclaim ∧ CPR ≥ 0.6 ∧ C > O when required)."""
    if surge is None or surge < p.surge_min - _EPS:
        return False
    if bar.close < reclaim - _EPS or cpr(bar.close, bar.low, bar.high) < p.surge_cpr_min - _EPS:
        return False
    return bar.close > bar.open or not p.surge_require_up_bar


def bar_strength_accumulates(bar: BarView, median_volume: float | None, prior_bars: int, p: KprParams) -> bool:
    """P10c: CPR ≥ 0.75 ∧ C > O ∧ V / median(V of the last 20 bars) ≥ 1.3."""
    if median_volume is None or median_volume <= 0 or prior_bars < p.bar_strength_min_bars:
        return False
    return (
        cpr(bar.close, bar.low, bar.high) >= p.bar_strength_cpr_min - _EPS
        and bar.close > bar.open
        and bar.volume / median_volume >= p.bar_strength_vol_mult - _EPS
    )


@dataclass(frozen=True, slots=True)
class MicroReading:
    state: Micro
    source: str
    """``ticks`` (TickPressure) or ``proxy``."""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def is_proxy(self) -> bool:
        return self.source == "proxy"


def micro_pressure(
    imbalance: float | None,
    bar: BarView,
    reclaim: float,
    surge: float | None,
    median_volume: float | None,
    prior_bars: int,
    p: KprParams,
) -> MicroReading:
    """P10: TickPressure when defined, else ACCUMULATE if either proxy says so, else NEUTRAL."""
    tick = tick_pressure(imbalance, p)
    if tick is not None:
        return MicroReading(tick, "ticks", {"imbalance": round(imbalance or 0.0, 4)})
    vs = volume_surge_accumulates(surge, bar, reclaim, p)
    bs = bar_strength_accumulates(bar, median_volume, prior_bars, p)
    detail = {
        "surge": None if surge is None else round(surge, 4),
        "volume_surge": vs,
        "bar_strength": bs,
        "cpr": round(cpr(bar.close, bar.low, bar.high), 4),
        "median_volume": median_volume,
    }
    return MicroReading(Micro.ACCUMULATE if vs or bs else Micro.NEUTRAL, "proxy", detail)


# ----------------------------------------------------------------------------- P11 program (per stock)


class ProgramTracker:
    """Cumulative program net buy (₩) samples of one symbol, newest last (kept for ~10 min)."""

    def __init__(self, keep_sec: float = 900.0) -> None:
        self.samples: deque[tuple[datetime, float]] = deque()
        self.keep_sec = keep_sec

    def add(self, ts: datetime, net_value: float) -> None:
        if self.samples and ts < self.samples[-1][0]:
            return
        self.samples.append((ts, net_value))
        while self.samples and (ts - self.samples[0][0]).total_seconds() > self.keep_sec:
            self.samples.popleft()

    def state(self, now: datetime, tv: float, stale_limit_sec: float, p: KprParams) -> ProgramState:
        if not self.samples or (now - self.samples[-1][0]).total_seconds() > stale_limit_sec:
            return ProgramState.STALE
        ts, net = self.samples[-1]
        if tv <= 0:
            return ProgramState.NEUTRAL
        horizon = p.program_trend_min * 60.0
        older = [v for t, v in self.samples if (ts - t).total_seconds() >= horizon - _EPS]
        if not older:
            return ProgramState.NEUTRAL
        before = older[-1]
        if net >= p.program_net_pct * tv - _EPS and net > before:
            return ProgramState.ACCUMULATE
        if net <= -p.program_net_pct * tv + _EPS and net < before:
            return ProgramState.DISTRIBUTE
        return ProgramState.NEUTRAL


# ----------------------------------------------------------------------------- market program (KMP K7)


@dataclass(slots=True)
class _MarketFeed:
    buy: float | None = None
    sell: float | None = None
    net: float | None = None
    ewma: float = 0.0
    ts: datetime | None = None
    failures: int = 0


class MarketProgram:
    """K7 method per market: Δ = Δbuy − Δsell (or Δnet), ``EWMA ← α·Δ + (1−α)·EWMA``; a first sample
    of the day or a decreasing monotonic series re-initialises (EWMA 0)."""

    MARKETS = ("KOSPI", "KOSDAQ")

    def __init__(self, p: KprParams) -> None:
        self.p = p
        self.feeds: dict[str, _MarketFeed] = {m: _MarketFeed() for m in self.MARKETS}

    def update(
        self,
        market: str,
        ts: datetime,
        buy_cum: float | None = None,
        sell_cum: float | None = None,
        net_cum: float | None = None,
    ) -> str:
        f = self.feeds.setdefault(market.upper(), _MarketFeed())
        first = f.ts is None or f.ts.date() != ts.date()
        how = "update"
        if buy_cum is not None and sell_cum is not None:
            if first or f.buy is None or f.sell is None or buy_cum < f.buy or sell_cum < f.sell:
                f.ewma, how = 0.0, "reset"
            else:
                delta = (buy_cum - f.buy) - (sell_cum - f.sell)
                f.ewma = self.p.market_program_alpha * delta + (1 - self.p.market_program_alpha) * f.ewma
            f.buy, f.sell, f.net = buy_cum, sell_cum, None
        elif net_cum is not None:
            if first or f.net is None:
                f.ewma, how = 0.0, "reset"
            else:
                delta = net_cum - f.net
                f.ewma = self.p.market_program_alpha * delta + (1 - self.p.market_program_alpha) * f.ewma
            f.net = net_cum
        else:
            return "ignored"
        f.ts, f.failures = ts, 0
        return how

    def fail(self, market: str) -> int:
        f = self.feeds.setdefault(market.upper(), _MarketFeed())
        f.failures += 1
        return f.failures

    def healthy(self, now: datetime) -> bool:
        return all(
            f.ts is not None
            and f.failures < self.p.market_program_max_failures
            and (now - f.ts).total_seconds() <= self.p.market_program_stale_sec
            for f in (self.feeds[m] for m in self.MARKETS)
        )

    def outflow(self, now: datetime) -> bool | None:
        """True when both EWMAs are < 0; None when the feed is unhealthy (the adder is skipped)."""
        if not self.healthy(now):
            return None
        return all(self.feeds[m].ewma < 0 for m in self.MARKETS)

    def fields(self, now: datetime) -> dict[str, Any]:
        return {
            "healthy": self.healthy(now),
            **{f"ewma_{m.lower()}": round(self.feeds[m].ewma, 2) for m in self.MARKETS},
        }
