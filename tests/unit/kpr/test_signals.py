"""P9–P11 signals and the P13 confidence table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from strategies.kpr.confidence import Confidence, confidence
from strategies.kpr.config import KprParams
from strategies.kpr.minutes import BarView
from strategies.kpr.signals import (
    InvestorReading,
    InvestorState,
    MarketProgram,
    Micro,
    MicroReading,
    ProgramState,
    ProgramTracker,
    bar_strength_accumulates,
    classify_investor,
    investor_state,
    micro_pressure,
    tick_pressure,
    volume_surge,
    volume_surge_accumulates,
)
from strategies.sdk.indicators import TickImbalance
from tests.unit.kpr._helpers import ts

P = KprParams()
TV = 1_000_000_000  # today's traded value ₩1B: 2% = ₩20M, 1% = ₩10M


@pytest.mark.parametrize(
    ("f", "i", "state"),
    [
        (15e6, 5e6, InvestorState.STRONG),
        (15e6, 4.9e6, InvestorState.NEUTRAL),
        (-15e6, -5e6, InvestorState.DISTRIBUTE),
        (-25e6, 1e6, InvestorState.NEUTRAL),  # opposite signs, one below 1%
        (10e6, -10e6, InvestorState.CONFLICT),
        (30e6, -9e6, InvestorState.NEUTRAL),
        (0, 30e6, InvestorState.NEUTRAL),
    ],
)
def test_investor_classification(f, i, state):
    assert classify_investor(f, i, TV, P) is state


def test_investor_stale_after_the_limit_and_when_missing():
    r = InvestorReading(ts(10, 0), 15e6, 5e6)
    assert investor_state(r, TV, ts(10, 2), 120, P) is InvestorState.STRONG
    assert investor_state(r, TV, ts(10, 2, 1), 120, P) is InvestorState.STALE
    assert investor_state(r, TV, ts(10, 0, 31), 30, P) is InvestorState.STALE  # micro-window limit
    assert investor_state(None, TV, ts(10, 0), 120, P) is InvestorState.STALE


def test_tick_pressure_thresholds_and_the_60s_minimum():
    assert tick_pressure(0.2, P) is Micro.ACCUMULATE
    assert tick_pressure(0.19, P) is Micro.NEUTRAL
    assert tick_pressure(-0.2, P) is Micro.DISTRIBUTE
    assert tick_pressure(None, P) is None
    imb = TickImbalance(P.tick_window_sec, P.tick_min_sec)
    for k in range(12):  # downticks for 55 s: undefined (< 60 s), then defined
        imb.add(ts(10, 0, 5 * k), 10_000 - k, 10)
    assert tick_pressure(imb.value(ts(10, 0, 59)), P) is None
    assert tick_pressure(imb.value(ts(10, 1, 0)), P) is Micro.DISTRIBUTE


def _bar(o, h, lo, c, v=1_000.0) -> BarView:
    return BarView(600, o, h, lo, c, v)


def test_volume_surge_proxy():
    # 130k shares traded by t against ADV20 1M and an expected 10% by t: surge 1.3
    surge = volume_surge(130_000, 1_000_000, 0.10)
    assert surge == pytest.approx(1.3)
    good = _bar(9_600, 9_700, 9_600, 9_660)  # C ≥ reclaim 9,628.8, CPR 0.6, C > O
    assert volume_surge_accumulates(surge, good, 9_628.8, P)
    assert not volume_surge_accumulates(1.29, good, 9_628.8, P)
    assert not volume_surge_accumulates(surge, _bar(9_600, 9_700, 9_600, 9_620), 9_628.8, P)  # C < reclaim
    assert not volume_surge_accumulates(surge, _bar(9_600, 9_700, 9_600, 9_650), 9_628.8, P)  # CPR 0.5
    assert not volume_surge_accumulates(surge, _bar(9_680, 9_700, 9_600, 9_670), 9_628.8, P)  # C < O
    assert volume_surge_accumulates(
        surge, _bar(9_680, 9_700, 9_600, 9_670), 9_628.8, KprParams(surge_require_up_bar=False)
    )
    assert volume_surge(100, 0, 0.1) is None and volume_surge(100, 1_000, 0) is None


def test_bar_strength_proxy():
    b = _bar(9_600, 9_700, 9_600, 9_675, v=1_300)  # CPR 0.75, C > O, V 1.3 × median
    assert bar_strength_accumulates(b, 1_000, 20, P)
    assert not bar_strength_accumulates(_bar(9_600, 9_700, 9_600, 9_674, v=1_300), 1_000, 20, P)
    assert not bar_strength_accumulates(_bar(9_600, 9_700, 9_600, 9_675, v=1_299), 1_000, 20, P)
    assert not bar_strength_accumulates(b, 1_000, 4, P)  # too little history


def test_micro_prefers_ticks_and_proxies_never_distribute():
    strong = _bar(9_600, 9_700, 9_600, 9_690, v=5_000)
    ticks = micro_pressure(0.0, strong, 9_628.8, 5.0, 1_000, 20, P)
    assert (ticks.state, ticks.source) == (Micro.NEUTRAL, "ticks")  # ticks win over accumulating proxies
    proxy = micro_pressure(None, strong, 9_628.8, 0.1, 1_000, 20, P)
    assert (proxy.state, proxy.source) == (Micro.ACCUMULATE, "proxy") and proxy.detail["bar_strength"]
    weak = micro_pressure(None, _bar(9_700, 9_700, 9_600, 9_610), 9_628.8, 0.1, 1_000, 20, P)
    assert weak.state is Micro.NEUTRAL


def test_program_tracker():
    tr = ProgramTracker()
    assert tr.state(ts(10, 0), TV, 120, P) is ProgramState.STALE
    tr.add(ts(10, 0), 5e6)
    assert tr.state(ts(10, 1), TV, 120, P) is ProgramState.NEUTRAL  # no sample 5 min older yet
    tr.add(ts(10, 5), 12e6)
    assert tr.state(ts(10, 5), TV, 120, P) is ProgramState.ACCUMULATE  # ≥ 1% of TV and rising over 5 min
    assert tr.state(ts(10, 7, 1), TV, 120, P) is ProgramState.STALE
    tr.add(ts(10, 10), 11e6)
    assert tr.state(ts(10, 10), TV, 120, P) is ProgramState.NEUTRAL  # ≥ 1% but falling
    tr.add(ts(10, 15), -12e6)
    assert tr.state(ts(10, 15), TV, 120, P) is ProgramState.DISTRIBUTE


def test_market_program_ewma_and_health():
    mp = MarketProgram(P)
    assert mp.outflow(ts(10, 0)) is None  # no feed: the adder is skipped
    mp.update("KOSPI", ts(10, 0), buy_cum=1_000, sell_cum=900)
    mp.update("KOSDAQ", ts(10, 0), net_cum=0)
    mp.update("KOSPI", ts(10, 1), buy_cum=1_100, sell_cum=1_300)  # Δ = 100 − 400 = −300 → EWMA −105
    mp.update("KOSDAQ", ts(10, 1), net_cum=-50)
    assert mp.feeds["KOSPI"].ewma == pytest.approx(-105)
    assert mp.outflow(ts(10, 2)) is True
    assert mp.outflow(ts(10, 1) + timedelta(seconds=181)) is None  # older than 180 s
    mp.update("KOSPI", ts(10, 2), buy_cum=500, sell_cum=1_300)  # a decreasing cumulative: reset
    assert mp.feeds["KOSPI"].ewma == 0 and mp.outflow(ts(10, 2)) is False


@pytest.mark.parametrize(
    ("investor", "micro", "program", "label"),
    [
        (InvestorState.DISTRIBUTE, Micro.ACCUMULATE, ProgramState.ACCUMULATE, Confidence.RED),
        (InvestorState.STRONG, Micro.DISTRIBUTE, ProgramState.ACCUMULATE, Confidence.RED),
        (InvestorState.STRONG, Micro.ACCUMULATE, ProgramState.DISTRIBUTE, Confidence.RED),
        (InvestorState.STRONG, Micro.NEUTRAL, ProgramState.ACCUMULATE, Confidence.GREEN),
        (InvestorState.CONFLICT, Micro.ACCUMULATE, ProgramState.ACCUMULATE, Confidence.YELLOW),
        (InvestorState.STALE, Micro.NEUTRAL, ProgramState.NEUTRAL, Confidence.YELLOW),
        (InvestorState.STRONG, Micro.ACCUMULATE, ProgramState.UNAVAILABLE, Confidence.GREEN),
        (InvestorState.STALE, Micro.ACCUMULATE, ProgramState.UNAVAILABLE, Confidence.YELLOW),
        (InvestorState.STRONG, Micro.NEUTRAL, ProgramState.UNAVAILABLE, Confidence.YELLOW),
        (InvestorState.STALE, Micro.NEUTRAL, ProgramState.UNAVAILABLE, Confidence.NONE),
    ],
)
def test_confidence_table(investor, micro, program, label):
    res = confidence(investor, MicroReading(micro, "ticks"), program)
    assert res.label is label
    assert res.pillars == (2 if program is ProgramState.UNAVAILABLE else 3)


def test_proxy_distribute_does_not_exist_and_staleness_flags():
    res = confidence(InvestorState.STALE, MicroReading(Micro.NEUTRAL, "proxy"), ProgramState.UNAVAILABLE)
    assert res.stale and res.label is Confidence.NONE
    res = confidence(InvestorState.NEUTRAL, MicroReading(Micro.ACCUMULATE, "proxy"), ProgramState.UNAVAILABLE)
    assert not res.stale and res.label is Confidence.YELLOW
    res = confidence(
        InvestorState.NEUTRAL, MicroReading(Micro.ACCUMULATE, "proxy"), ProgramState.UNAVAILABLE, degraded=True
    )
    assert res.stale
