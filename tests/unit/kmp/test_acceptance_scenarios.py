"""strategies.md §7 KMP acceptance scenarios 1–8, with the spec's numbers.

Each scenario is checked on the pure rule and, where the engine owns the behaviour, end to end on
:class:`KmpEngine`.
"""

from __future__ import annotations

import pytest

from strategies.kmp.config import KmpParams
from strategies.kmp.decisions import ExitAction, ReasonCode
from strategies.kmp.engine import KmpEngine
from strategies.kmp.exits import r_multiple, stall_exit, trail_factor, trail_hit, trail_price
from strategies.kmp.fsm import State
from strategies.kmp.gates import (
    GateInputs,
    check_gates,
    min_surge,
    size_time_mult,
    static_up,
    time_decay_ok,
    vi_wall,
    vi_wall_ok,
)
from strategies.kmp.regime import ProgramOverlay, ProgramRegime
from strategies.kmp.scanner import is_gap_skip, or_pct, or_range_ok
from strategies.kmp.sizing import position_size, quality_multiplier
from strategies.kmp.timing import whole_minutes_since
from tests.unit.kmp._helpers import DAY, armed_engine, bar, cache, or_bars, scanned_engine, ts

# ------------------------------------------------------------------ 1. OR range


def test_s1_or_range_too_narrow_pure():
    assert or_pct(10_100, 10_000) == pytest.approx(0.00995, abs=1e-5)  # 0.995%
    assert not or_range_ok(10_100, 10_000)


def test_s1_or_range_too_narrow_engine():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A", value_base=1_000_000)])
    out = eng.scan(ts(9, 15), {"A": or_bars("A", base=10_050, high=10_100, low=10_000)})
    assert eng.state_of("A") is State.DONE
    d = [d for d in out.decisions if d.code is ReasonCode.KMP_OR_RANGE][0]
    assert d.symbol == "A"
    assert d.fields["or_high"] == 10_100 and d.fields["or_low"] == 10_000
    assert d.fields["or_pct"] == pytest.approx(0.00995, abs=1e-5)


# ------------------------------------------------------------------ 2. gap skip


def test_s2_gap_skip_pure():
    assert is_gap_skip(21_000, 20_000)  # exactly +5.0%
    assert not is_gap_skip(20_990, 20_000)


def test_s2_gap_skip_engine_at_0900():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A", prior_close=20_000)])
    out = eng.on_open(ts(9, 0), {"A": 21_000})
    assert eng.state_of("A") is State.DONE
    (d,) = out.decisions
    assert d.code is ReasonCode.KMP_GAP_SKIP and d.ts == ts(9, 0)
    assert d.fields["gap_pct"] == pytest.approx(0.05)
    # a DONE symbol is not ranked at 09:15 even with a big surge
    scan = eng.scan(ts(9, 15), {"A": or_bars("A")})
    assert eng.state_of("A") is State.DONE
    assert [d for d in scan.decisions if d.code is ReasonCode.KMP_SCAN][0].fields["candidates"] == []


# ------------------------------------------------------------------ 3. time decay and size_time_mult


def test_s3_time_decay_pure():
    m = whole_minutes_since(ts(9, 41), DAY, KmpParams().entry_start)
    assert m == 25
    assert min_surge(25) == pytest.approx(4.00)
    assert time_decay_ok(4.0, 25)
    assert size_time_mult(25) == pytest.approx(0.70)
    assert whole_minutes_since(ts(9, 42), DAY, KmpParams().entry_start) == 26
    assert min_surge(26) == pytest.approx(4.04)
    assert not time_decay_ok(4.0, 26)


@pytest.mark.parametrize("minute, blocked", [(41, False), (42, True)])
def test_s3_time_decay_engine(minute, blocked):
    # value_base chosen so that surge = 151.5M / 37.875M = 4.0
    eng = armed_engine(minute=minute, caches=[cache("A", value_base=37_875_000)])
    out = eng.on_trade("A", 10_220, 10, ts(9, minute, 50))
    if blocked:
        assert out.codes() == [ReasonCode.KMP_G_TIME_DECAY]
        assert out.decisions[0].fields["min_surge"] == pytest.approx(4.04)
        assert eng.state_of("A") is State.ARMED
    else:
        assert out.codes() == [ReasonCode.KMP_ENTRY]
        assert out.decisions[0].fields["size_time_mult"] == pytest.approx(0.70)
        assert eng.state_of("A") is State.ORDER_WORKING


# ------------------------------------------------------------------ 4. VI wall


def test_s4_vi_wall_pure():
    assert static_up(50_000, 0.02) == 51_000
    assert vi_wall(50_000, 0.02, 10) == 50_000
    assert not vi_wall_ok(50_000, 50_000)
    assert vi_wall_ok(49_950, 50_000)


@pytest.mark.parametrize("limit, code", [(50_000, ReasonCode.KMP_VI_WALL), (49_950, ReasonCode.KMP_G_QUALITY)])
def test_s4_vi_wall_gate_order(limit, code):
    g = GateInputs(
        now=ts(9, 30),
        time_of_day=ts(9, 30).time(),
        open_count=0,
        sector_count=0,
        day_pnl_pct=0.0,
        risk_off=False,
        surge=5.0,
        m=14,
        rvol=lambda: 3.0,
        spread_pct=lambda: 0.001,
        limit=lambda: limit,
        vi_ref=50_000,
        last_vi=None,
        nav=1e9,
        quality=lambda: 10.0,
        qty=lambda: 5,
    )
    res = check_gates(g)
    assert res.code is code  # 49,950 passes the wall and fails only at the next gate (quality 10)
    assert res.detail["vi_wall"] == 50_000 and res.detail["static_up"] == 51_000


def test_s4_vi_wall_engine():
    # vi_ref 10,100 → static_up 10,302 → 10,300, wall 10,200; the entry limit is 10,240 → blocked
    eng = armed_engine(vi_ref=10_100)
    out = eng.on_trade("A", 10_220, 10, ts(9, 20, 50))
    assert out.codes() == [ReasonCode.KMP_VI_WALL]
    assert out.decisions[0].fields["limit"] == 10_240 and out.decisions[0].fields["vi_wall"] == 10_200
    assert eng.state_of("A") is State.ARMED and not out.actions


# ------------------------------------------------------------------ 5. sizing


def test_s5_sizing_pure():
    size = position_size(
        nav=1_000_000_000,
        limit=10_000,
        initial_stop=9_800,
        quality_mult=quality_multiplier(65),
        time_mult=size_time_mult(10),
        program_mult=1.0,
        value_last5=6_000_000_000,
    )
    assert quality_multiplier(65) == 1.0 and size_time_mult(10) == pytest.approx(0.88)
    assert size.qty_base == pytest.approx(25_000)
    assert size.qty_after_mult == 22_000
    assert size.liquidity_cap == 30_000  # 5% of ₩6B / 10,000 does not bind
    assert size.nav_cap == 20_000
    assert size.qty == 20_000 and size.capped_by == "nav"


def test_s5_oms_modified_qty_is_used():
    eng = armed_engine()
    enter = eng.on_trade("A", 10_220, 10, ts(9, 20, 50)).actions[0]
    out = eng.on_intent_result("A", ts(9, 20, 51), "MODIFIED", modified_qty=enter.qty // 2)
    assert out.codes() == [ReasonCode.KMP_ENTRY_MODIFIED]
    assert eng.syms["A"].order.qty == enter.qty // 2


# ------------------------------------------------------------------ 6. stall scratch


def test_s6_stall_pure():
    assert r_multiple(10_080, 10_000, 200) == pytest.approx(0.4)
    assert stall_exit(10_080, 10_000, 200, held_min=8)
    assert not stall_exit(10_080, 10_000, 200, held_min=7.9)
    assert not stall_exit(10_100, 10_000, 200, held_min=8)  # exactly 0.5R holds


def _position_engine() -> KmpEngine:
    """A KMP position (fill 10,000, stop 9,800 → R = 200) recovered at 09:30, no opening range known."""
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A")])
    eng.on_position_recovered("A", 100, 10_000, ts(9, 30), stop_px=9_800, entry_ts=ts(9, 30))
    return eng


def test_s6_stall_engine():
    eng = _position_engine()
    assert eng.position_of("A").r == 200
    # bar 09:36 ends 09:37 → 7 min held: no stall check yet
    assert not eng.on_bar("A", bar("A", ts(9, 36), 10_050, 10_090, 10_040, 10_080, 500)).actions
    out = eng.on_bar("A", bar("A", ts(9, 37), 10_050, 10_090, 10_040, 10_080, 500))  # minute 8
    (x,) = out.actions
    assert isinstance(x, ExitAction) and x.reason is ReasonCode.KMP_X_STALL
    d = [d for d in out.decisions if d.code is ReasonCode.KMP_X_STALL][0]
    assert d.fields["r_multiple"] == pytest.approx(0.4)
    assert eng.state_of("A") is State.EXITING


# ------------------------------------------------------------------ 7. adaptive trail


def test_s7_trail_pure():
    assert trail_factor(25, defensive=False) == pytest.approx(0.667)
    trail = trail_price(10_000, 10_600, 200, 25, structure_stop=9_800, defensive=False)
    assert trail == pytest.approx(10_400.2)
    assert trail_hit(10_400, trail)
    assert not trail_hit(10_410, trail)
    assert trail_factor(25, defensive=True) == pytest.approx(0.7)
    assert trail_price(10_000, 10_600, 200, 25, 9_800, defensive=True) == pytest.approx(10_420)


def _trail_engine() -> KmpEngine:
    eng = _position_engine()
    eng.on_trade("A", 10_600, 10, ts(9, 40))  # max_fav 10,600
    return eng


def test_s7_trail_engine_holds_at_10410_exits_at_10400():
    eng = _trail_engine()
    for i in range(7):  # a minute of buyer-initiated prints: imb > 0
        eng.on_trade("A", 10_450, 100, ts(9, 54) + (ts(9, 0, 10 * i) - ts(9, 0)), "BUY")
    assert not eng.on_trade("A", 10_410, 1, ts(9, 55), "BUY").actions  # 25 min held, trail 10,400.2
    out = eng.on_trade("A", 10_400, 1, ts(9, 55), "BUY")
    (x,) = out.actions
    assert x.reason is ReasonCode.KMP_X_TRAIL
    d = [d for d in out.decisions if d.code is ReasonCode.KMP_X_TRAIL][0]
    assert d.fields["trail"] == pytest.approx(10_400.2, abs=0.05)


def test_s7_trail_engine_negative_imbalance_tightens_to_10420():
    eng = _trail_engine()
    for i in range(7):  # seller-initiated prints: imb < 0
        eng.on_trade("A", 10_450, 100, ts(9, 54) + (ts(9, 0, 10 * i) - ts(9, 0)), "SELL")
    out = eng.on_trade("A", 10_410, 1, ts(9, 55), "SELL")
    (x,) = out.actions
    assert x.reason is ReasonCode.KMP_X_TRAIL
    d = [d for d in out.decisions if d.code is ReasonCode.KMP_X_TRAIL][0]
    assert d.fields["trail"] == pytest.approx(10_420, abs=0.05)
    assert d.fields["imbalance"] < 0


# ------------------------------------------------------------------ 8. program overlay


def test_s8_program_overlay_pure():
    ov = ProgramOverlay()
    ov.update("KOSDAQ", ts(9, 0), 500, 400)
    ov.update("KOSDAQ", ts(9, 1), 600, 420)  # KOSDAQ EWMA 0.35·80 = 28 > 0
    assert ov.update("KOSPI", ts(9, 0), 1_000, 900) == "init"
    assert ov.update("KOSPI", ts(9, 1), 1_300, 1_000) == "update"
    assert ov.flows["KOSPI"].ewma == pytest.approx(70)
    assert ov.regime(ts(9, 1)) is ProgramRegime.STRONG_INFLOW
    assert ov.multiplier(ts(9, 1)) == pytest.approx(1.10)
    assert ov.update("KOSPI", ts(9, 2), 500, 1_050) == "reset"
    assert ov.flows["KOSPI"].ewma == 0
    assert ov.regime(ts(9, 2)) is ProgramRegime.MIXED
    assert ov.multiplier(ts(9, 2)) == 1.0


def test_s8_program_overlay_engine_logs_ewma():
    eng = scanned_engine()
    eng.on_program(ts(9, 0), "KOSDAQ", buy_cum=500, sell_cum=400)
    eng.on_program(ts(9, 1), "KOSDAQ", buy_cum=600, sell_cum=420)
    eng.on_program(ts(9, 0), "KOSPI", buy_cum=1_000, sell_cum=900)
    out = eng.on_program(ts(9, 1), "KOSPI", buy_cum=1_300, sell_cum=1_000)
    (d,) = out.decisions
    assert d.code is ReasonCode.KMP_PROGRAM and d.fields["KOSPI"]["ewma"] == pytest.approx(70)
    assert d.fields["regime"] == "strong_inflow" and d.fields["mult"] == pytest.approx(1.10)
    out = eng.on_program(ts(9, 2), "KOSPI", buy_cum=500, sell_cum=1_050)
    assert out.decisions[0].fields["sample"] == "reset" and out.decisions[0].fields["regime"] == "mixed"
