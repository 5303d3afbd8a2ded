"""KprEngine end to end: setup → acceptance → ENTER → fill → partial → exit, OMS replies, recovery,
tiers/polling/stream slots, VWAP continuity, flow deterioration, the 15:15 flatten, provider modes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker_core.contract.reasons import ReasonCode
from strategies.kpr.config import KprParams
from strategies.kpr.decisions import CancelAction, EnterAction, ExitAction, ModifyRiskAction, ReduceAction
from strategies.kpr.engine import KprEngine, ProviderMode
from strategies.kpr.fsm import State
from strategies.kpr.tiers import Tier
from tests.unit.kpr._helpers import bar, cache, engine, feed, panic_path, reclaim_bar, strong_bar, ts


def _one(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def _entered(eng: KprEngine | None = None) -> tuple[KprEngine, EnterAction]:
    """Paper mode (investor STALE, program UNAVAILABLE, REST data): setup on the 10:10 bar, closes on
    10:11–10:13 (3 of 4 required), the strong 10:14 bar enters YELLOW."""
    eng = eng or engine(caches=[cache(atr20=300)])
    panic_path(eng)
    for m in range(11, 14):
        assert not reclaim_bar(eng, ts(10, m)).actions
    out = strong_bar(eng, ts(10, 14))
    return eng, _one(out.actions, EnterAction)


# ------------------------------------------------------------------ the whole path


def test_setup_accept_enter_partial_exit():
    eng = engine(caches=[cache(atr20=300)])
    out = panic_path(eng)
    assert ReasonCode.KPR_SETUP_PANIC in out.codes() and eng.tier_of("A") is Tier.HOT
    codes = []
    for m in range(11, 15):
        codes += reclaim_bar(eng, ts(10, m)).codes()
    # paper: no true ticks (+1) and investor STALE (+1) → 4 closes; no investor STRONG and a NEUTRAL proxy → NONE
    assert codes.count(ReasonCode.KPR_ACCEPT_CLOSE) == 4
    assert ReasonCode.KPR_BLOCK_NOCONFIRM in codes and eng.state_of("A") is State.ACCEPTING
    out = strong_bar(eng, ts(10, 15))  # BarStrength proxy ACCUMULATEs: YELLOW (two-pillar)
    enter = _one(out.actions, EnterAction)
    assert (enter.confidence, enter.order_type, enter.cancel_after_sec) == ("YELLOW", "LIMIT", 30)
    assert enter.limit_price == 9_730  # up(last 9,695, 3): no fresh quote
    assert enter.stop_px == pytest.approx(9_571.2)
    # 0.5% NAV · 0.65 · 0.85 · 1.0 / (9,730 − 9,571.2) = 17,396 → capped at 15% NAV less the 0.5% margin: 14,902
    assert enter.qty == 14_902
    assert enter.idempotency_key == "KPR:A:ENTER:20260227T101500"
    assert eng.state_of("A") is State.ENTRY_PENDING and eng.entry_signal_count == 1

    eng.on_intent_result("A", ts(10, 16, 1), "ACCEPTED")
    out = eng.on_fill("A", "BUY", 14_902, 9_720, ts(10, 16, 2))
    mod = _one(out.actions, ModifyRiskAction)
    assert mod.stop_px == pytest.approx(9_571.2) and mod.time_stop_ts == ts(10, 16, 2) + timedelta(minutes=45)
    assert eng.state_of("A") is State.IN_POSITION
    pos = eng.position_of("A")
    assert pos.r == pytest.approx(148.8) and pos.bucket.value == "NORMAL"  # ATR20 300 / 9,720 = 3.1%
    eng.on_order_closed("A", ts(10, 16, 3), 14_902)

    # REST bars (no stream slot): the high reaches 1.5R (9,943.2) → REDUCE half
    out = eng.on_bar("A", bar(ts(10, 16), 9_720, 9_950, 9_700, 9_930, 2_000), ts(10, 17, 10), "rest")
    reduce = _one(out.actions, ReduceAction)
    assert (reduce.qty, reduce.reason) == (7_451, ReasonCode.KPR_X_TARGET_PARTIAL)
    assert reduce.limit_price == 9_900  # round_down(9,930 · 0.997) = 9,900
    eng.on_fill("A", "SELL", 7_451, 9_920, ts(10, 17, 12))
    out = eng.on_bar("A", bar(ts(10, 17), 9_930, 10_010, 9_900, 10_000, 2_000), ts(10, 18, 10), "rest")
    assert not out.actions  # 2.0R = 10,017.6 not reached
    out = eng.on_bar("A", bar(ts(10, 18), 10_000, 10_020, 9_990, 10_010, 2_000), ts(10, 19, 10), "rest")
    exit_ = _one(out.actions, ExitAction)
    assert exit_.reason is ReasonCode.KPR_X_TARGET
    out = eng.on_fill("A", "SELL", 7_451, 10_000, ts(10, 19, 12))
    closed = next(d for d in out.decisions if d.code is ReasonCode.KPR_POSITION_CLOSED)
    assert closed.fields["realized_pnl"] == pytest.approx(7_451 * 200 + 7_451 * 280)
    assert eng.state_of("A") is State.DONE
    # DONE: no re-entry that day, even on a fresh panic
    out = feed(eng, "A", ts(10, 20), 9_600, 9_600, 9_400, 9_450, 100)
    assert ReasonCode.KPR_SETUP_PANIC not in out.codes()
    assert eng.funnel == {"setups": 1, "accepting": 1, "closes_met": 1, "confirmed": 1, "entries": 1, "fills": 1}


def test_stop_exit_on_a_stream_trade_and_exit_retry():
    eng, enter = _entered()
    eng.on_fill("A", "BUY", enter.qty, 9_720, ts(10, 15, 5))
    assert not eng.on_trade("A", 9_572, 10, ts(10, 16)).actions
    out = eng.on_trade("A", 9_571, 10, ts(10, 16, 1))
    first = _one(out.actions, ExitAction)
    assert first.reason is ReasonCode.KPR_X_STOP
    assert not eng.on_trade("A", 9_560, 10, ts(10, 16, 2)).actions  # exit in flight
    assert not eng.on_clock(ts(10, 16, 20)).actions
    out = eng.on_clock(ts(10, 16, 21))  # still held 20 s later: its sell is cancelled first, not sold twice
    assert _one(out.actions, CancelAction).reason is ReasonCode.KPR_EXIT_RETRY
    assert ReasonCode.KPR_EXIT_RETRY in out.codes() and not [a for a in out.actions if isinstance(a, ExitAction)]
    out = eng.on_order_closed("A", ts(10, 16, 22), 0, side="SELL", state="CANCELLED")  # → re-sent at once
    again = _one(out.actions, ExitAction)
    assert again.reason is ReasonCode.KPR_X_STOP and again.idempotency_key != first.idempotency_key


def test_two_sells_cancelled_together_re_send_the_exit_once():
    eng, enter = _entered()
    eng.on_fill("A", "BUY", enter.qty, 9_720, ts(10, 15, 5))
    _one(eng.on_trade("A", 9_571, 10, ts(10, 16, 1)).actions, ExitAction)
    _one(eng.on_clock(ts(10, 16, 21)).actions, CancelAction)  # the exit's sell and a partial-target sell work
    _one(eng.on_order_closed("A", ts(10, 16, 22), 0, side="SELL", state="CANCELLED").actions, ExitAction)
    assert not eng.on_order_closed("A", ts(10, 16, 22), 0, side="SELL", state="CANCELLED").actions


def test_an_exit_whose_sell_was_not_working_any_more_is_re_sent_by_the_next_timer():
    eng, enter = _entered()
    eng.on_fill("A", "BUY", enter.qty, 9_720, ts(10, 15, 5))
    first = _one(eng.on_trade("A", 9_571, 10, ts(10, 16, 1)).actions, ExitAction)
    _one(eng.on_clock(ts(10, 16, 21)).actions, CancelAction)  # no sell ends after it: nothing was working
    assert not eng.on_clock(ts(10, 16, 40)).actions
    again = _one(eng.on_clock(ts(10, 16, 41)).actions, ExitAction)
    assert again.idempotency_key != first.idempotency_key
    assert not [a for a in eng.on_clock(ts(15, 30)).actions if isinstance(a, ExitAction | CancelAction)]


def test_nothing_to_sell_while_a_sell_works_waits_and_a_cancelled_sell_resends_the_exit():
    eng, enter = _entered()
    eng.on_fill("A", "BUY", enter.qty, 9_720, ts(10, 15, 5))
    eng.on_trade("A", 9_500, 10, ts(10, 16))
    out = eng.on_intent_result(
        "A", ts(10, 16, 21), "REJECTED", intent_type="EXIT", reason_code="NOTHING_TO_SELL", allocation_qty=enter.qty
    )
    assert ReasonCode.KPR_X_EXTERNAL not in out.codes() and eng.position_of("A") is not None
    assert not eng.on_order_closed("A", ts(10, 16, 30), enter.qty, side="SELL", state="FILLED").actions
    out = eng.on_order_closed("A", ts(10, 16, 30), 0, side="SELL", state="CANCELLED")
    assert _one(out.actions, ExitAction).reason is ReasonCode.KPR_X_STOP
    assert ReasonCode.KPR_EXIT_RETRY in out.codes()
    out = eng.on_intent_result(
        "A", ts(10, 16, 31), "REJECTED", intent_type="EXIT", reason_code="NOTHING_TO_SELL", allocation_qty=0
    )
    assert ReasonCode.KPR_X_EXTERNAL in out.codes() and eng.position_of("A") is None


def test_exit_rejected_for_a_missing_allocation_closes_the_position():
    eng, enter = _entered()
    eng.on_fill("A", "BUY", enter.qty, 9_720, ts(10, 15, 5))
    eng.on_trade("A", 9_500, 10, ts(10, 16))
    out = eng.on_intent_result("A", ts(10, 16, 1), "REJECTED", intent_type="EXIT", reason_code="NO_ALLOCATION")
    assert ReasonCode.KPR_X_EXTERNAL in out.codes() and eng.position_of("A") is None
    assert eng.state_of("A") is State.DONE


# ------------------------------------------------------------------ OMS replies and order outcomes


def test_missed_fill_retries_once_on_a_later_qualifying_bar_then_done():
    eng, first = _entered()
    out = eng.on_order_closed("A", ts(10, 15, 31), 0)
    assert ReasonCode.KPR_MISSED_FILL in out.codes() and eng.state_of("A") is State.ACCEPTING
    assert not feed(eng, "A", ts(10, 15), 9_640, 9_700, 9_600, 9_620, 5_000).actions  # C < reclaim: not qualifying
    out = strong_bar(eng, ts(10, 16))
    second = _one(out.actions, EnterAction)
    assert second.idempotency_key == "KPR:A:ENTER:20260227T101600" != first.idempotency_key
    out = eng.on_order_closed("A", ts(10, 17, 31), 0)
    d = next(d for d in out.decisions if d.code is ReasonCode.KPR_MISSED_FILL)
    assert d.fields["final"] and eng.state_of("A") is State.DONE


def test_deferred_waits_for_the_cooldown_and_is_not_a_try():
    eng, _ = _entered()
    eng.on_intent_result("A", ts(10, 15, 1), "DEFERRED", cooldown_until=ts(10, 17, 30))
    assert eng.state_of("A") is State.ACCEPTING
    out = strong_bar(eng, ts(10, 15))
    assert ReasonCode.KPR_BLOCK_RETRY_WAIT in out.codes() and not out.actions
    out = strong_bar(eng, ts(10, 17))  # decided 10:18 ≥ cooldown_until
    _one(out.actions, EnterAction)
    assert eng.syms["A"].acc.tries == 0


def test_rejected_counts_as_a_try_and_modified_sets_the_qty():
    eng, _ = _entered()
    eng.on_intent_result("A", ts(10, 15, 1), "REJECTED", reason_code="ENTRY_LOCKED")
    assert eng.state_of("A") is State.ACCEPTING and eng.syms["A"].acc.tries == 1
    out = strong_bar(eng, ts(10, 15))
    _one(out.actions, EnterAction)
    eng.on_intent_result("A", ts(10, 16, 1), "MODIFIED", modified_qty=9_000)
    assert eng.syms["A"].order.qty == 9_000


def test_an_entry_still_open_after_the_timeout_is_cancelled_and_a_partial_kept():
    eng, enter = _entered()
    eng.on_fill("A", "BUY", 100, 9_720, ts(10, 15, 10))
    assert not [a for a in eng.on_clock(ts(10, 15, 39)).actions if isinstance(a, CancelAction)]
    out = eng.on_clock(ts(10, 15, 40))  # 30 s + 10 s grace
    _one(out.actions, CancelAction)
    out = eng.on_order_closed("A", ts(10, 15, 41), 100)
    assert ReasonCode.KPR_PARTIAL_KEPT in out.codes() and eng.position_of("A").qty == 100


def test_late_fill_after_a_missed_fill_is_adopted():
    eng, _ = _entered()
    eng.on_order_closed("A", ts(10, 15, 31), 0)
    out = eng.on_fill("A", "BUY", 50, 9_720, ts(10, 15, 32))
    d = next(d for d in out.decisions if d.code is ReasonCode.KPR_FILL)
    assert d.fields["late"] and eng.state_of("A") is State.IN_POSITION
    assert eng.position_of("A").stop == pytest.approx(9_571.2)


# ------------------------------------------------------------------ recovery


def test_recovered_position_keeps_its_oms_stop_time_stop_and_partial():
    eng = engine(caches=[cache(atr20=300)])
    out = eng.on_position_recovered(
        "A",
        50,
        10_000,
        ts(11, 0),
        stop_px=9_800,
        initial_stop_px=9_800,
        entry_ts=ts(10, 30),
        time_stop_ts=ts(11, 15),
        partial_done=True,
    )
    assert not out.actions  # the OMS already has the stop and the time stop
    assert eng.state_of("A") is State.IN_POSITION and eng.tier_of("A") is Tier.HOT
    assert not eng.on_trade("A", 10_300, 1, ts(11, 1)).actions  # partial already taken
    assert _one(eng.on_trade("A", 10_400, 1, ts(11, 2)).actions, ExitAction).reason is ReasonCode.KPR_X_TARGET


def test_recovered_without_a_stop_publishes_the_default_one():
    eng = engine()
    out = eng.on_position_recovered("Z", 10, 10_000, ts(11, 0), entry_ts=ts(10, 50))
    mod = _one(out.actions, ModifyRiskAction)
    assert mod.stop_px == pytest.approx(9_850) and mod.time_stop_ts == ts(11, 35)
    assert _one(eng.on_clock(ts(11, 35)).actions, ExitAction).reason is ReasonCode.KPR_X_TIME


def test_symbols_entered_today_are_not_entered_again():
    eng = engine()
    eng.mark_entered(ts(9, 0), ["A"])
    out = panic_path(eng)
    assert ReasonCode.KPR_SETUP_PANIC not in out.codes() and eng.state_of("A") is State.DONE


# ------------------------------------------------------------------ flatten, flow


def test_flatten_at_15_15_cancels_entries_and_exits_positions():
    eng = engine(("A", "B"), caches=[cache("A"), cache("B")])
    eng.on_position_recovered("A", 10, 10_000, ts(15, 0), stop_px=9_800, entry_ts=ts(14, 40), time_stop_ts=ts(15, 25))
    assert not eng.on_clock(ts(15, 14, 55)).actions
    out = eng.on_clock(ts(15, 15))
    assert _one(out.actions, ExitAction).reason is ReasonCode.KPR_X_EOD


def test_flow_deterioration_raises_the_stop_to_the_fill():
    eng = engine(investor=ProviderMode.LIVE, caches=[cache(atr20=300)])
    feed(eng, "A", ts(9, 0), 10_000, 10_000, 10_000, 10_000, 10_000)  # TV ₩100M
    eng.on_position_recovered("A", 10, 10_000, ts(10, 0), stop_px=9_800, entry_ts=ts(10, 0))
    eng.on_trade("A", 10_050, 1, ts(10, 1))
    out = eng.on_investor("A", ts(10, 2), -3_000_000, -1_000_000)  # |f + i| ≥ 2% of TV, both selling
    assert ReasonCode.KPR_X_FLOW in out.codes()
    assert _one(out.actions, ModifyRiskAction).stop_px == 10_000 and not [
        a for a in out.actions if isinstance(a, ExitAction)
    ]
    assert _one(eng.on_trade("A", 10_000, 1, ts(10, 3)).actions, ExitAction).reason is ReasonCode.KPR_X_STOP


def test_flow_deterioration_with_last_below_the_fill_exits_at_once_and_flow_reduce():
    eng = engine(investor=ProviderMode.LIVE, caches=[cache(atr20=300)])
    feed(eng, "A", ts(9, 0), 10_000, 10_000, 10_000, 10_000, 10_000)
    eng.on_position_recovered("A", 10, 10_000, ts(10, 0), stop_px=9_800, entry_ts=ts(10, 0))
    eng.on_trade("A", 9_950, 1, ts(10, 1))
    out = eng.on_investor("A", ts(10, 2), -3_000_000, -1_000_000)
    assert _one(out.actions, ExitAction).reason is ReasonCode.KPR_X_FLOW
    eng2 = engine(params=KprParams(flow_reduce=True), investor=ProviderMode.LIVE, caches=[cache(atr20=300)])
    feed(eng2, "A", ts(9, 0), 10_000, 10_000, 10_000, 10_000, 10_000)
    eng2.on_position_recovered("A", 10, 10_000, ts(10, 0), stop_px=9_800, entry_ts=ts(10, 0))
    eng2.on_trade("A", 10_050, 1, ts(10, 1))
    out = eng2.on_investor("A", ts(10, 2), -3_000_000, -1_000_000)
    assert _one(out.actions, ReduceAction).qty == 5


# ------------------------------------------------------------------ tiers, polling, stream


def test_polling_plan_cold_warm_and_streamed_hot():
    eng = engine(tuple(f"S{i}" for i in range(6)), caches=[cache(f"S{i}") for i in range(6)])
    # COLD polls are spread over the first 180 s from 09:00, each symbol once
    first = {}
    t = ts(9, 0)
    while t < ts(9, 3):
        for s in eng.take_due_polls(t):
            first.setdefault(s, t)
        t += timedelta(seconds=5)
    assert sorted(first) == [f"S{i}" for i in range(6)]
    assert [first[f"S{i}"] for i in range(6)] == [ts(9, 0, 30 * i) for i in range(6)]
    assert eng.take_due_polls(ts(9, 2, 59)) == []
    assert eng.take_due_polls(ts(9, 3)) == ["S0"]  # COLD: every 180 s
    # S1 becomes HOT (−2% from the open) and gets a slot: not polled while streamed
    feed(eng, "S1", ts(9, 3), 10_000, 10_000, 10_000, 10_000, 100)
    feed(eng, "S1", ts(9, 4), 9_800, 9_800, 9_800, 9_800, 100)
    assert eng.tier_of("S1") is Tier.HOT and eng.desired_stream(ts(9, 5)) == ["S1"]
    eng.on_slots(ts(9, 5), ["S1"], {})
    polled = set()
    for k in range(0, 600, 5):
        polled |= set(eng.take_due_polls(ts(9, 5, k)))
    assert "S1" not in polled
    # denied/evicted: back on REST at the WARM cadence at once, asked for again after slot_retry_sec
    eng.on_slots(ts(9, 15), [], {"S1": "EVICTED_LOWER_PRIORITY"})
    assert "S1" in eng.take_due_polls(ts(9, 15))
    assert eng.desired_stream(ts(9, 16)) == [] and eng.desired_stream(ts(9, 17)) == ["S1"]
    assert "S1" in eng.take_due_polls(ts(9, 15, 30))


def test_rest_start_is_the_last_bar_held():
    eng = engine()
    assert eng.rest_start("A") == ts(9, 0)
    feed(eng, "A", ts(9, 0), 10_000, 10_000, 10_000, 10_000, 100)
    feed(eng, "A", ts(9, 1), 10_000, 10_000, 10_000, 10_000, 100)
    assert eng.rest_start("A") == ts(9, 1)


def test_vwap_is_continuous_across_a_source_switch():
    eng = engine()
    ref = KprEngine()
    ref.premarket(ts(8, 30), [cache()])
    bars = [bar(ts(9, i), 10_000 + i, 10_010 + i, 9_990 + i, 10_000 + i, 100 * (i + 1)) for i in range(6)]
    for b in bars[:3]:
        eng.on_bar("A", b, b["start"] + timedelta(minutes=1), "rest")
    out = eng.on_bar("A", bars[3], ts(9, 4), "ws")
    d = next(d for d in out.decisions if d.code is ReasonCode.KPR_VWAP_CONTINUITY)
    assert (d.fields["source_from"], d.fields["source_to"], d.fields["gap_minutes"], d.fields["ok"]) == (
        "rest",
        "ws",
        0,
        True,
    )
    # the REST bar of the same minute replaces the stream's (re-fetched "last one again"): counted once
    eng.on_bar("A", bars[3], ts(9, 4, 30), "rest")
    for b in bars[4:]:
        eng.on_bar("A", b, b["start"] + timedelta(minutes=1), "rest")
    for b in bars:
        ref.on_bar("A", b, b["start"] + timedelta(minutes=1), "rest")
    assert eng.syms["A"].series.vwap_value == pytest.approx(ref.syms["A"].series.vwap_value)


def test_tick_pressure_needs_60s_since_subscribing():
    eng = engine(investor=ProviderMode.LIVE)
    eng.on_slots(ts(10, 0), ["A"], {})
    for k in range(12):
        eng.on_trade("A", 10_000 + k, 1, ts(10, 0, 5 * k))
    assert eng._imbalance(eng.syms["A"], ts(10, 0, 59)) is None
    assert eng._imbalance(eng.syms["A"], ts(10, 1)) == pytest.approx(1.0)
    eng.on_unsubscribed(ts(10, 2), ["A"])
    assert eng._imbalance(eng.syms["A"], ts(10, 2)) is None


# ------------------------------------------------------------------ providers and status


def test_provider_mode_is_logged_once_and_shown_in_status():
    eng = KprEngine()
    eng.premarket(ts(8, 30), [cache()])
    out = eng.set_provider_mode(ts(8, 30), "program", ProviderMode.UNAVAILABLE, "no endpoint")
    assert out.codes() == [ReasonCode.KPR_PROVIDER_MODE, ReasonCode.KPR_PROGRAM_UNAVAILABLE]
    assert eng.set_provider_mode(ts(9, 0), "program", ProviderMode.UNAVAILABLE, "no endpoint").codes() == []
    eng.set_provider_mode(ts(8, 30), "investor", ProviderMode.DAILY_ONLY, "completed sessions only")
    st = eng.status(ts(10, 0))
    assert st["providers"]["investor"] == "DAILY_ONLY" and st["providers"]["program"] == "UNAVAILABLE"
    assert st["providers"]["pillars"] == 2 and st["providers"]["investor_signal"] == "STALE"
    assert eng.investor_due(ts(10, 0)) == [] and eng.program_due(ts(10, 0)) == []


def test_investor_and_program_polling_plans():
    eng = engine(("A", "B"), investor=ProviderMode.LIVE, program=ProviderMode.REST, caches=[cache("A"), cache("B")])
    panic_path(eng, "A")  # A: HOT and in a setup; B: COLD
    assert eng.investor_due(ts(10, 11)) == ["A"] and eng.program_due(ts(10, 11)) == ["A"]
    eng.on_investor("A", ts(10, 11), None, None)
    eng.on_program("A", ts(10, 11), 1e6)
    assert eng.investor_due(ts(10, 11, 59)) == [] and eng.investor_due(ts(10, 12)) == ["A"]
    assert eng.program_due(ts(10, 12)) == ["A"]


def test_index_below_minus_1pct_adds_a_close():
    eng = engine()
    eng.on_index(ts(10, 0), "KOSPI", 2_470, 2_500)  # −1.2%
    panic_path(eng)
    out = reclaim_bar(eng, ts(10, 11))
    d = next(d for d in out.decisions if d.code is ReasonCode.KPR_ACCEPT_CLOSE)
    assert "index_unfavourable" in d.fields["adders"] and d.fields["required"] == 5


def test_budget_block_without_nav_and_when_halted():
    eng = engine()
    eng.on_account(ts(10, 0), 1e9, -0.01, buyable_cash=1e9, halted=True)
    panic_path(eng)
    for m in range(11, 14):
        reclaim_bar(eng, ts(10, m))
    out = strong_bar(eng, ts(10, 14))
    d = next(d for d in out.decisions if d.code is ReasonCode.KPR_BLOCK_BUDGET)
    assert d.fields["why"] == "OMS halts new entries" and not out.actions


def test_a_stale_rest_bar_does_not_enter():
    eng = engine()
    panic_path(eng)
    for m in range(11, 14):
        reclaim_bar(eng, ts(10, m))
    b = bar(ts(10, 14), 9_640, 9_700, 9_630, 9_695, 5_000)
    out = eng.on_bar("A", b, ts(10, 16, 31), "rest")  # ended 10:15, seen 91 s later
    assert ReasonCode.KPR_BLOCK_STALE_BAR in out.codes() and not out.actions


def test_a_position_recovered_before_premarket_takes_its_volatility_bucket_from_the_cache():
    eng = KprEngine()
    eng.on_position_recovered("A", 10, 10_000, ts(8, 5), stop_px=9_800, entry_ts=ts(8, 0), time_stop_ts=ts(9, 45))
    assert eng.position_of("A").target_r == 2.0  # no ATR yet: NORMAL
    eng.premarket(ts(8, 30), [cache("A", atr20=500)])  # ATR 5%: HIGH → 2.5R
    pos = eng.position_of("A")
    assert pos.target_r == 2.5 and pos.target_px == 10_500 and eng.state_of("A") is State.IN_POSITION
