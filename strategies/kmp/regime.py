"""K4–K7: market regime (risk_off, chop, leader breadth) and the program-trading overlay.

Program flow is **unavailable on the paper exchange** (KIS serves no program-trading TRs on paper,
kis.md). The overlay is designed for that: the caller simply never feeds a sample (or reports
failures) and the regime is ``mixed`` with multiplier ×1.00 — the neutral fallback K7 gives for a
missing feed, 3 consecutive failed polls or a last good sample older than 180 s. ``mixed`` never
tightens the trail (K18 only tightens on ``outflow``). The overlay is never a gate.

**[resolved]** choices:

* Missing index data makes that index's risk_off test false (logged as missing); OMS halt /
  flatten means the OMS's daily-loss *halt* or a flatten in progress, not the −2% warn level.
* Leader ``rvol`` uses the K12 definition: ``max(V_last_completed_1m, V_current_1m) / vol1m_base``.
* A program sample's day is its KST date; the first sample of a new day re-initialises.
* ``breadth_ok = count ≥ 8`` is the spec's count for a ≈400-name universe; the engine scales it to the
  day's universe with the §6 rule (:func:`scaled_count`: ``max(1, ceil(8·N/400))``, 2 for 60 names).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from strategies.kmp.config import KmpParams
from strategies.kmp.timing import kst
from strategies.sdk.indicators import efficiency_ratio

MARKETS = ("KOSPI", "KOSDAQ")


# --------------------------------------------------------------------------- K4 risk_off / chop


def index_change(last: float | None, prior_close: float | None) -> float | None:
    if last is None or prior_close is None or prior_close <= 0:
        return None
    return last / prior_close - 1.0


def chop_state(closes: Sequence[float], p: KmpParams | None = None) -> tuple[bool, float | None]:
    """K4 chop over the last ``n = min(20, available)`` KOSPI 1m closes; needs n ≥ 10."""
    p = p or KmpParams()
    window = list(closes)[-p.chop_bars :]
    if len(window) < p.chop_min_bars:
        return False, None
    er = efficiency_ratio(window)
    assert er is not None
    return er < p.chop_er_max, er


@dataclass(frozen=True, slots=True)
class LeaderView:
    """Live figures of one breadth-population symbol."""

    symbol: str
    surge: float | None
    rvol: float | None
    last: float | None
    vwap: float | None
    age_sec: float | None
    """Seconds since the newest price of this symbol (None = never seen)."""


def scaled_count(base: int, universe: int, reference: int | None) -> int:
    """A count threshold set for a ``reference``-name universe, scaled to ``universe`` names (§6 rule ×N/400):
    ``max(1, ceil(base · N / reference))``. ``base`` 0 stays 0 (test disabled); ``reference`` None = no scaling."""
    if base <= 0 or reference is None:
        return max(0, base)
    return max(1, math.ceil(base * universe / reference - 1e-9))


def is_leader(v: LeaderView, p: KmpParams | None = None) -> bool:
    """K5: surge ≥ 3 ∧ rvol ≥ 1.5 ∧ last ≥ VWAP, on data at most 120 s old."""
    p = p or KmpParams()
    if v.age_sec is None or v.age_sec > p.leader_stale_sec:
        return False
    if v.surge is None or v.rvol is None or v.last is None or v.vwap is None:
        return False
    return v.surge >= p.leader_surge_min and v.rvol >= p.leader_rvol_min and v.last >= v.vwap


@dataclass(frozen=True, slots=True)
class RegimeSnapshot:
    ts: datetime
    risk_off: bool
    chop: bool
    breadth: int
    breadth_ok: bool
    kospi_chg: float | None
    kosdaq_chg: float | None
    efficiency: float | None
    oms_halt: bool
    oms_flatten: bool
    leaders: tuple[str, ...] = ()
    breadth_min: int | None = None
    """The leader count breadth_ok needed (scaled to the universe)."""

    @property
    def regime_ok(self) -> bool:
        """K6: ¬risk_off ∧ ¬chop ∧ breadth_ok."""
        return not self.risk_off and not self.chop and self.breadth_ok

    def fields(self) -> dict:
        return {
            "risk_off": self.risk_off,
            "chop": self.chop,
            "breadth": self.breadth,
            "breadth_ok": self.breadth_ok,
            "breadth_min": self.breadth_min,
            "regime_ok": self.regime_ok,
            "kospi_chg": self.kospi_chg,
            "kosdaq_chg": self.kosdaq_chg,
            "efficiency_ratio": self.efficiency,
            "oms_halt": self.oms_halt,
            "oms_flatten": self.oms_flatten,
            "leaders": list(self.leaders),
        }


def compute_regime(
    ts: datetime,
    *,
    kospi_chg: float | None,
    kosdaq_chg: float | None,
    kospi_closes: Sequence[float],
    leaders: Sequence[LeaderView],
    oms_halt: bool = False,
    oms_flatten: bool = False,
    p: KmpParams | None = None,
    breadth_min: int | None = None,
) -> RegimeSnapshot:
    """K4–K6. ``breadth_min``: the leader count needed (default ``p.breadth_min``, unscaled)."""
    p = p or KmpParams()
    need = p.breadth_min if breadth_min is None else breadth_min
    index_off = any(c is not None and c <= p.risk_off_index_drop + 1e-12 for c in (kospi_chg, kosdaq_chg))
    risk_off = index_off or oms_halt or oms_flatten
    chop, er = chop_state(kospi_closes, p)
    names = tuple(sorted(v.symbol for v in leaders if is_leader(v, p)))
    return RegimeSnapshot(
        ts,
        risk_off,
        chop,
        len(names),
        len(names) >= need,
        kospi_chg,
        kosdaq_chg,
        er,
        oms_halt,
        oms_flatten,
        names,
        need,
    )


def neutral_regime(ts: datetime) -> RegimeSnapshot:
    """Before the first computation: not risk_off, not chop, no breadth (regime_ok False)."""
    return RegimeSnapshot(ts, False, False, 0, False, None, None, None, False, False)


# --------------------------------------------------------------------------- K7 program overlay


class ProgramRegime(StrEnum):
    STRONG_INFLOW = "strong_inflow"
    OUTFLOW = "outflow"
    MIXED = "mixed"


@dataclass(slots=True)
class ProgramFlow:
    """EWMA of program-flow interval deltas of one market (K7)."""

    alpha: float = 0.35
    day: date | None = None
    buy: float | None = None
    sell: float | None = None
    net: float | None = None
    ewma: float = 0.0
    last_good: datetime | None = None
    failures: int = 0
    samples: int = 0
    resets: int = 0

    def update(
        self, ts: datetime, buy_cum: float | None = None, sell_cum: float | None = None, net_cum: float | None = None
    ) -> str:
        """Fold one sample in; returns 'init', 'reset' or 'update'."""
        if buy_cum is None and sell_cum is None and net_cum is None:
            raise ValueError("a program sample needs buy/sell cumulatives or a net cumulative")
        if (buy_cum is None) != (sell_cum is None):
            raise ValueError("program buy and sell cumulatives come together")
        day = kst(ts).date()
        self.failures = 0
        self.last_good = ts
        self.samples += 1
        new_day = self.day != day
        self.day = day
        if buy_cum is not None and sell_cum is not None:
            monotone_break = (self.buy is not None and buy_cum < self.buy) or (
                self.sell is not None and sell_cum < self.sell
            )
            if new_day or self.buy is None or self.sell is None or monotone_break:
                self.buy, self.sell, self.net, self.ewma = buy_cum, sell_cum, None, 0.0
                if not new_day and monotone_break:
                    self.resets += 1
                    return "reset"
                return "init"
            delta = (buy_cum - self.buy) - (sell_cum - self.sell)
            self.buy, self.sell = buy_cum, sell_cum
        else:
            assert net_cum is not None
            # only a cumulative net figure: reset on a new date only, negative Δ allowed [resolved]
            if new_day or self.net is None:
                self.buy = self.sell = None
                self.net, self.ewma = net_cum, 0.0
                return "init"
            delta = net_cum - self.net
            self.net = net_cum
        self.ewma = self.alpha * delta + (1 - self.alpha) * self.ewma
        return "update"

    def fail(self) -> int:
        self.failures += 1
        return self.failures

    def usable(self, now: datetime, p: KmpParams) -> bool:
        if self.last_good is None or self.samples == 0:
            return False
        if self.failures >= p.program_max_failures:
            return False
        return (now - self.last_good).total_seconds() <= p.program_stale_sec


@dataclass(slots=True)
class ProgramOverlay:
    """Both markets' program EWMAs and the resulting regime / size multiplier."""

    params: KmpParams = field(default_factory=KmpParams)
    flows: dict[str, ProgramFlow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in MARKETS:
            self.flows.setdefault(m, ProgramFlow(alpha=self.params.program_ewma_alpha))

    def _flow(self, market: str) -> ProgramFlow:
        key = market.upper()
        if key not in self.flows:
            raise ValueError(f"unknown market {market!r}; expected one of {MARKETS}")
        return self.flows[key]

    def update(
        self,
        market: str,
        ts: datetime,
        buy_cum: float | None = None,
        sell_cum: float | None = None,
        net_cum: float | None = None,
    ) -> str:
        return self._flow(market).update(ts, buy_cum, sell_cum, net_cum)

    def fail(self, market: str) -> int:
        return self._flow(market).fail()

    def regime(self, now: datetime) -> ProgramRegime:
        flows = [self.flows[m] for m in MARKETS]
        if not all(f.usable(now, self.params) for f in flows):
            return ProgramRegime.MIXED
        if all(f.ewma > 0 for f in flows):
            return ProgramRegime.STRONG_INFLOW
        if all(f.ewma < 0 for f in flows):
            return ProgramRegime.OUTFLOW
        return ProgramRegime.MIXED

    def multiplier(self, now: datetime) -> float:
        r = self.regime(now)
        p = self.params
        return {
            ProgramRegime.STRONG_INFLOW: p.program_inflow_mult,
            ProgramRegime.OUTFLOW: p.program_outflow_mult,
            ProgramRegime.MIXED: p.program_mixed_mult,
        }[r]

    def fields(self, now: datetime) -> dict:
        out: dict = {"regime": self.regime(now).value, "mult": self.multiplier(now)}
        for m, f in self.flows.items():
            out[m] = {
                "ewma": f.ewma,
                "usable": f.usable(now, self.params),
                "failures": f.failures,
                "last_good": f.last_good.isoformat() if f.last_good else None,
            }
        return out
