"""strategies.md §7 KPR acceptance scenarios 1–8, with the spec's numbers.

Each scenario is checked on the pure rule and, where the engine owns the behaviour, end to end on
:class:`KprEngine`.
"""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from broker_core.contract.reasons import ReasonCode
from strategies.kpr.confidence import Confidence, confidence, confidence_mult, stale_mult
from strategies.kpr.config import KprParams
from strategies.kpr.decisions import EnterAction, ExitAction, ReduceAction
from strategies.kpr.engine import ProviderMode
from strategies.kpr.exits import ExitKind, VolBucket, open_position, partial_qty, price_exit, vol_bucket
from strategies.kpr.fsm import Acceptance, State, acceptance_adders, invalidated, required_closes
from strategies.kpr.gates import GateInputs, check_gates
from strategies.kpr.setup import SetupType, check_setup, lock_setup
from strategies.kpr.signals import InvestorState, Micro, MicroReading, ProgramState
from strategies.kpr.sizing import tod_mult
from tests.unit.kpr._helpers import cache, engine, panic_path, reclaim_bar, strong_bar, ts

P = KprParams()


def _decision(out, code):
    return next(d for d in out.decisions if d.code is code)


# ------------------------------------------------------------------ 1. panic setup


def test_s1_panic_setup_pure():
    chk = check_setup(hod=10_100, hod_minute=600, close=9_650, vwap=10_000, bar_minute=610, p=P)
    assert chk.type is SetupType.PANIC
    assert chk.drop == pytest.approx(0.0446, abs=5e-5)  # 4.46%
    assert chk.dt_min == 10
    assert chk.depth == pytest.approx(0.035)
    setup = lock_setup(chk, lod=9_600, hod=10_100, vwap=10_000, close=9_650, locked_at=ts(10, 11), bar_minute=610, p=P)
    assert setup.reclaim == pytest.approx(9_628.8)
    assert setup.stop_level == pytest.approx(9_571.2)


def test_s1_panic_setup_engine():
    eng = engine()
    out = panic_path(eng)
    d = _decision(out, ReasonCode.KPR_SETUP_PANIC)
    assert d.fields["hod"] == 10_100 and d.fields["vwap"] == pytest.approx(10_000)
    assert d.fields["drop"] == pytest.approx(0.0446, abs=5e-5)
    assert d.fields["dt_min"] == 10 and d.fields["depth"] == pytest.approx(0.035)
    assert d.fields["setup_low"] == 9_600
    assert (d.fields["reclaim"], d.fields["stop_level"]) == (pytest.approx(9_628.8), pytest.approx(9_571.2))
    assert eng.state_of("A") is State.SETUP_DETECTED


# ------------------------------------------------------------------ 2–3. no setup


def test_s2_drop_2_5pct_45_min_after_hod_is_neither_panic_nor_drift():
    close = 10_000 * (1 - 0.025)
    vwap = close / (1 - 0.03)  # depth 3%: inside the band
    assert check_setup(10_000, 600, close, vwap, 645, P).type is None
    # the same drop 60 min after the HOD is a DRIFT, 15 min after with 3% a PANIC: the rule is the time
    assert check_setup(10_000, 600, close, vwap, 660, P).type is SetupType.DRIFT
    assert check_setup(10_000, 600, 9_700, 9_700 / 0.97, 615, P).type is SetupType.PANIC


def test_s3_drop_4pct_depth_5_5pct_is_outside_the_band():
    close = 9_600
    assert check_setup(10_000, 600, close, close / (1 - 0.055), 605, P).type is None
    assert check_setup(10_000, 600, close, close / (1 - 0.05), 605, P).type is SetupType.PANIC


# ------------------------------------------------------------------ 4. required closes


def test_s4_proxy_micro_stale_investor_late_window_requires_5_closes_pure():
    adders = acceptance_adders(
        micro_is_proxy=True,
        investor_stale=True,
        t=time(14, 10),
        index_change=None,
        program_outflow=None,
        program_unavailable=True,
        p=P,
    )
    assert adders == ["micro_proxy", "investor_stale", "late_window"]
    assert required_closes(adders, P) == 5
    assert (
        required_closes(
            acceptance_adders(
                micro_is_proxy=True,
                investor_stale=True,
                t=time(13, 50),
                index_change=None,
                program_outflow=None,
                program_unavailable=True,
                p=P,
            ),
            P,
        )
        == 4
    )


def test_s4_engine_counts_required_closes_at_14_10():
    eng = engine()  # paper: investor DAILY_ONLY (STALE), program UNAVAILABLE, no stream (proxy micro)
    panic_path(eng, hod=ts(13, 50))  # setup on the 14:00 bar
    out = reclaim_bar(eng, ts(14, 9))  # closes at 14:10
    d = _decision(out, ReasonCode.KPR_ACCEPT_CLOSE)
    assert d.fields["required"] == 5
    assert d.fields["adders"] == ["micro_proxy", "investor_stale", "late_window"]


# ------------------------------------------------------------------ 5. invalidation


def test_s5_low_below_stop_level_invalidates_pure():
    chk = check_setup(10_100, 600, 9_650, 10_000, 610, P)
    setup = lock_setup(chk, 9_600, 10_100, 10_000, 9_650, ts(10, 11), 610, P)
    assert invalidated(setup, low=9_570, close=9_600, mode="low")
    assert not invalidated(setup, low=9_572, close=9_600, mode="low")
    acc = Acceptance(setup)
    assert acc.on_bar(high=9_640, low=9_570, close=9_600, bar_end=ts(10, 12), p=P)
    assert acc.state is State.INVALIDATED


def test_s5_engine_invalidates_on_a_low_of_9570():
    eng = engine()
    panic_path(eng)
    out = eng.on_bar(
        "A",
        {"start": ts(10, 11), "open": 9_620, "high": 9_640, "low": 9_570, "close": 9_600, "volume": 1_000},
        ts(10, 12),
    )
    assert ReasonCode.KPR_INVALIDATED in out.codes()
    assert eng.state_of("A") is State.INVALIDATED


# ------------------------------------------------------------------ 6. confidence and size factor


def test_s6_three_pillar_green_with_stale_program_pure():
    res = confidence(InvestorState.STRONG, MicroReading(Micro.ACCUMULATE, "ticks"), ProgramState.STALE)
    assert res.label is Confidence.GREEN and res.pillars == 3 and res.stale
    factor = confidence_mult(res.label, P) * stale_mult(res.stale, P) * tod_mult(time(10, 45), P)
    assert factor == pytest.approx(0.68)


def test_s6_engine_enters_green_with_size_factor_0_68_at_10_45():
    eng = engine(investor=ProviderMode.LIVE, program=ProviderMode.REST, caches=[cache(atr20=300)])
    panic_path(eng, hod=ts(10, 32))  # setup on the 10:42 bar
    eng.on_slots(ts(10, 43), ["A"], {})  # HOT on the stream from 10:43
    t, price = ts(10, 43), 9_690.0
    while t < ts(10, 44, 59):  # upticks only: tick imbalance +1 with ≥ 60 s of ticks by 10:45
        price += 0.01
        eng.on_trade("A", round(price, 2), 10, t)
        t += timedelta(seconds=5)
        if t == ts(10, 44):
            assert not reclaim_bar(eng, ts(10, 43)).actions  # first close of two
        if t == ts(10, 44, 30):
            eng.on_investor("A", t, 40_000_000, 30_000_000)  # f, i > 0 and f + i ≥ 2% of TV
    out = reclaim_bar(eng, ts(10, 44))  # second close, decided at 10:45
    enter = next(a for a in out.actions if isinstance(a, EnterAction))
    d = _decision(out, ReasonCode.KPR_ENTRY)
    assert d.ts == ts(10, 45) and d.fields["required"] == 2
    assert d.fields["investor"] == "STRONG" and d.fields["micro"] == "ACCUMULATE"
    assert d.fields["micro_source"] == "ticks"
    assert d.fields["program"] == "STALE" and d.fields["pillars"] == 3
    assert enter.confidence == "GREEN"
    assert d.fields["size"]["size_factor"] == pytest.approx(0.68)
    assert d.fields["tod"] == 0.8


# ------------------------------------------------------------------ 7. timing and sector blocks


def _gates(t: time, sector_open: int = 0):
    return GateInputs(
        now=ts(t.hour, t.minute),
        t=t,
        sector_open=sector_open,
        confidence=Confidence.GREEN,
        retry_after=None,
        spread_pct=None,
        nav=1e9,
        halted=False,
        qty=100,
    )


def test_s7_timing_and_sector_blocks_pure():
    assert check_gates(_gates(time(11, 25)), P).code is ReasonCode.KPR_BLOCK_TIMING
    assert check_gates(_gates(time(10, 45), sector_open=2), P).code is ReasonCode.KPR_BLOCK_SECTOR
    assert check_gates(_gates(time(10, 45), sector_open=1), P).ok
    assert check_gates(_gates(time(13, 10)), P).ok and check_gates(_gates(time(14, 30)), P).code is (
        ReasonCode.KPR_BLOCK_TIMING
    )


def _accepted_engine(hod, symbols=("A", "B", "C")):
    eng = engine(symbols)
    panic_path(eng, "A", hod=hod)
    for m in range(11, 14):
        reclaim_bar(eng, hod + timedelta(minutes=m))
    return eng  # three closes of the four required; the next strong bar qualifies


def test_s7_engine_blocks_timing_at_11_25():
    eng = _accepted_engine(ts(11, 0))
    out = strong_bar(eng, ts(11, 24))  # decided at 11:25
    assert ReasonCode.KPR_BLOCK_TIMING in out.codes() and not out.actions
    assert eng.state_of("A") is State.ACCEPTING


def test_s7_engine_blocks_sector_with_two_open():
    eng = _accepted_engine(ts(10, 0))
    eng.on_position_recovered("B", 100, 10_000, ts(10, 10), stop_px=9_800, sector="S1")
    eng.on_position_recovered("C", 100, 10_000, ts(10, 10), stop_px=9_800, sector="S1")
    out = strong_bar(eng, ts(10, 14))
    d = _decision(out, ReasonCode.KPR_BLOCK_SECTOR)
    assert d.fields["sector_open"] == 2 and not out.actions


# ------------------------------------------------------------------ 8. targets and time stop


def test_s8_partial_target_and_time_stop_pure():
    assert vol_bucket(300, 10_000, P) is VolBucket.NORMAL  # ATR20/price 3%
    pos = open_position("A", 100, 10_000, ts(10, 0), 9_800, 300, P)
    assert (pos.r, pos.partial_px, pos.target_px) == (200, 10_300, 10_400)
    assert price_exit(pos, 10_299, 10_299, ts(10, 10)) is None
    assert price_exit(pos, 10_300, 10_300, ts(10, 10)) is ExitKind.PARTIAL
    assert partial_qty(pos.qty, P.partial_frac) == 50
    pos.partial_done = True
    assert price_exit(pos, 10_350, 10_350, ts(10, 20)) is None
    assert price_exit(pos, 10_400, 10_400, ts(10, 20)) is ExitKind.TARGET
    assert price_exit(pos, 10_100, 10_100, ts(10, 44, 59)) is None
    assert price_exit(pos, 10_100, 10_100, ts(10, 45)) is ExitKind.TIME


def test_s8_engine_reduces_at_10300_exits_at_10400():
    eng = engine(caches=[cache(atr20=300)])
    eng.on_position_recovered("A", 100, 10_000, ts(10, 0), stop_px=9_800, entry_ts=ts(10, 0))
    assert not eng.on_trade("A", 10_299, 1, ts(10, 5)).actions
    out = eng.on_trade("A", 10_300, 1, ts(10, 6))
    reduce = next(a for a in out.actions if isinstance(a, ReduceAction))
    assert reduce.qty == 50 and reduce.reason is ReasonCode.KPR_X_TARGET_PARTIAL
    eng.on_fill("A", "SELL", 50, 10_290, ts(10, 6, 5))
    out = eng.on_trade("A", 10_400, 1, ts(10, 9))
    exit_ = next(a for a in out.actions if isinstance(a, ExitAction))
    assert exit_.reason is ReasonCode.KPR_X_TARGET


def test_s8_engine_time_stop_at_fill_plus_45_min():
    eng = engine(caches=[cache(atr20=300)])
    eng.on_position_recovered("A", 100, 10_000, ts(10, 0), stop_px=9_800, entry_ts=ts(10, 0))
    assert not eng.on_clock(ts(10, 44, 55)).actions
    out = eng.on_clock(ts(10, 45))
    exit_ = next(a for a in out.actions if isinstance(a, ExitAction))
    assert exit_.reason is ReasonCode.KPR_X_TIME
