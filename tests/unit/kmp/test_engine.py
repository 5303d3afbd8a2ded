"""KmpEngine end to end: state machine, gates, orders, fills, exits, clock, data edge cases."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from strategies.kmp.config import KmpParams
from strategies.kmp.decisions import (
    CancelAction,
    EnterAction,
    ExitAction,
    FlattenAction,
    ModifyRiskAction,
    ReasonCode,
)
from strategies.kmp.engine import KmpEngine
from strategies.kmp.fsm import State
from strategies.kmp.sizing import entry_stops
from tests.unit.kmp._helpers import armed_engine, bar, cache, feed_volume_bars, or_bars, scanned_engine, ts

RECLAIM = ts(9, 20, 50)


def entered(symbols=("A",), **kw) -> tuple[KmpEngine, EnterAction]:
    eng = armed_engine(symbols, **kw)
    out = eng.on_trade(symbols[0], 10_220, 10, RECLAIM)
    (a,) = out.actions
    assert isinstance(a, EnterAction)
    return eng, a


def filled(qty: int | None = None) -> tuple[KmpEngine, EnterAction]:
    eng, a = entered()
    eng.on_intent_result("A", ts(9, 20, 51), "ACCEPTED")
    eng.on_fill("A", "BUY", qty or a.qty, 10_230, ts(9, 20, 52))
    return eng, a


# ------------------------------------------------------------------ premarket, scan, candidates


def test_scan_selects_trend_and_surge_ranked_top_n():
    p = KmpParams(candidates_top_n=2)
    caches = [
        cache("A"),
        cache("B", value_base=15_150_000),
        cache("C", trend_ok=False, value_base=1_000_000),
        cache("D", value_base=60_600_000),
        cache("E", value_base=None),
    ]
    eng = KmpEngine(p)
    eng.premarket(ts(8, 50), caches)
    out = eng.scan(ts(9, 15), {s: or_bars(s) for s in "ABCDE"})
    scan = [d for d in out.decisions if d.code is ReasonCode.KMP_SCAN][0]
    # surges: A 5, B 10, C 151.5 (trend fails), D 2.5 (< 3), E none
    assert scan.fields["candidates"] == [("B", 10.0), ("A", 5.0)]
    assert scan.fields["trend_ok"] == 4 and scan.fields["population"] == 3  # A, B, C have surge ≥ 3
    assert [eng.state_of(s) for s in "ABCDE"] == [State.CANDIDATE, State.CANDIDATE, State.DONE, State.DONE, State.DONE]
    assert eng.breadth_poll_symbols(ts(9, 16)) == ["C"]  # population without a trade subscription


def test_scan_gap_skip_from_the_0900_bar_and_no_data():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A", prior_close=9_600), cache("B")])
    out = eng.scan(ts(9, 15), {"A": or_bars("A")})  # open 10,100 ≥ 9,600·1.05 = 10,080
    assert eng.state_of("A") is State.DONE and ReasonCode.KMP_GAP_SKIP in out.codes()
    assert eng.state_of("B") is State.DONE
    assert [d for d in out.decisions if d.code is ReasonCode.KMP_SCAN][0].fields["no_data"] == 1


def test_scan_once_and_late_scan_logged():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A")])
    out = eng.scan(ts(9, 16, 1), {"A": or_bars("A")})
    assert out.codes()[0] is ReasonCode.KMP_SCAN_LATE
    assert eng.scan(ts(9, 16, 2), {"A": or_bars("A")}).codes() == [ReasonCode.KMP_DATA_IGNORED]


def test_candidate_waits_for_vi_ref_then_watch():
    eng = scanned_engine(vi_ref=None)
    assert eng.state_of("A") is State.CANDIDATE
    out = eng.on_trade("A", 10_150, 10, ts(9, 15, 5), vi_ref=10_150)
    assert out.codes() == [ReasonCode.KMP_WATCH] and eng.state_of("A") is State.WATCH


def test_candidate_without_vi_ref_is_done_after_grace():
    eng = scanned_engine(vi_ref=None)
    assert eng.on_clock(ts(9, 15, 59)).codes() == [ReasonCode.KMP_REGIME]
    out = eng.on_clock(ts(9, 16))
    assert ReasonCode.KMP_VI_MISSING in out.codes() and eng.state_of("A") is State.DONE


def test_slot_denied_candidate_is_done():
    eng = scanned_engine(["A", "B"])
    out = eng.on_slots(ts(9, 15, 1), granted=["A"], denied={"B": "budget full"})
    assert out.codes() == [ReasonCode.KMP_SLOTS, ReasonCode.KMP_SLOT_DENIED]
    assert eng.state_of("B") is State.DONE and eng.state_of("A") is State.WATCH


# ------------------------------------------------------------------ state machine through the engine


def test_break_pullback_reclaim_enter_with_spec_prices():
    eng = armed_engine()
    assert eng.state_of("A") is State.ARMED
    out = eng.on_trade("A", 10_220, 10, RECLAIM)
    (a,) = out.actions
    ctx = eng.syms["A"]
    atr = ctx.series.atr(14, 9 * 60 + 20)
    assert a.stop_price == 10_210  # trig = up(OR_high 10,200, 1)
    assert a.limit_price == 10_240  # round_up(trig + max(3·10, 2·10))
    assert a.cancel_after_sec == 30 and a.order_type == "STOP_LIMIT"
    assert a.hard_stop_px == pytest.approx(10_240 - 1.2 * atr)
    assert a.stop_px == 10_180  # structure down(10,200, 2) is higher
    # value of 09:15–09:19 = 4·3,000·10,150 + 15,000·10,150; 5% / 10,240 → liquidity cap binds
    assert a.qty == math.floor(0.05 * (4 * 3_000 + 15_000) * 10_150 / 10_240)
    assert a.risk_payload() == {
        "entry_px": 10_240,
        "stop_px": 10_180,
        "hard_stop_px": a.hard_stop_px,
        "rationale_code": "KMP_ENTRY",
        "confidence": "RED",
    }
    assert a.idempotency_key == "KMP-A-ENTER-20260227T092050"
    d = out.decisions[0]
    assert d.code is ReasonCode.KMP_ENTRY and d.fields["quality"] == pytest.approx(53.0)
    assert d.fields["components"]["liquidity"] == 0 and d.fields["size"]["capped_by"] == "liquidity"
    assert eng.state_of("A") is State.ORDER_WORKING
    assert eng.entry_signal_count == 1


def test_acceptance_timeout_via_clock_and_trade():
    eng = armed_engine()
    out = eng.on_clock(ts(9, 25, 6))  # break at 09:20:05
    assert ReasonCode.KMP_ACCEPT_TIMEOUT in out.codes() and eng.state_of("A") is State.DONE
    eng2 = armed_engine()
    out = eng2.on_trade("A", 10_220, 10, ts(9, 25, 6))
    assert out.codes() == [ReasonCode.KMP_ACCEPT_TIMEOUT] and not out.actions


def test_support_lost():
    eng = armed_engine()
    out = eng.on_trade("A", 10_000, 10, ts(9, 20, 30))
    assert out.codes() == [ReasonCode.KMP_SUPPORT_LOST] and eng.state_of("A") is State.DONE
    # DONE is terminal: a later reclaim does nothing
    assert not eng.on_trade("A", 10_250, 10, ts(9, 20, 40)).actions


def test_gate_failure_keeps_armed_and_retries_on_next_tick():
    eng = armed_engine()
    eng.syms["A"].quote_ts = ts(9, 19)  # stale quote → spread unknown
    out = eng.on_trade("A", 10_220, 10, RECLAIM)
    assert out.codes() == [ReasonCode.KMP_G_SPREAD_NA] and eng.state_of("A") is State.ARMED
    eng.on_quote("A", ts(9, 20, 55), 10_210, 10_220)
    out = eng.on_trade("A", 10_220, 10, ts(9, 20, 56))
    assert [type(a) for a in out.actions] == [EnterAction]


def test_gate_failures_are_throttled_per_symbol_and_code():
    eng = armed_engine()
    eng.syms["A"].quote_ts = ts(9, 19)
    assert eng.on_trade("A", 10_220, 1, ts(9, 20, 50)).codes() == [ReasonCode.KMP_G_SPREAD_NA]
    assert eng.on_trade("A", 10_220, 1, ts(9, 20, 52)).codes() == []
    assert eng.on_trade("A", 10_220, 1, ts(9, 20, 55)).codes() == [ReasonCode.KMP_G_SPREAD_NA]


def test_vi_during_acceptance_blocks_then_times_out():
    eng = armed_engine()
    assert eng.on_vi("A", ts(9, 20, 30), vi_ref=10_250).codes() == [ReasonCode.KMP_VI_EVENT]
    out = eng.on_trade("A", 10_220, 10, RECLAIM)
    assert out.codes() == [ReasonCode.KMP_VI_RECENT] and eng.state_of("A") is State.ARMED
    assert out.decisions[0].fields["vi_ref"] == 10_250
    out = eng.on_clock(ts(9, 25, 6))
    assert ReasonCode.KMP_ACCEPT_TIMEOUT in out.codes() and eng.state_of("A") is State.DONE


def test_max_positions_and_sector_gates():
    syms = ("A", "B", "C", "D", "E")
    caches = [cache(s, sector=f"S{i}") for i, s in enumerate(syms)]
    eng = armed_engine(syms, caches=caches)
    for s in syms[:4]:
        assert isinstance(eng.on_trade(s, 10_220, 10, RECLAIM).actions[0], EnterAction)
    out = eng.on_trade("E", 10_220, 10, RECLAIM)
    assert out.codes() == [ReasonCode.KMP_G_MAX_POS]
    eng2 = armed_engine(("A", "B"), caches=[cache("A", sector="X"), cache("B", sector="X")])
    assert isinstance(eng2.on_trade("A", 10_220, 10, RECLAIM).actions[0], EnterAction)
    assert eng2.on_trade("B", 10_220, 10, RECLAIM).codes() == [ReasonCode.KMP_G_SECTOR]


def test_sector_saturation_penalises_quality():
    eng = armed_engine(("A", "B"), caches=[cache("A", sector="X"), cache("B", sector="X")])
    out = eng.on_trade("A", 10_220, 10, RECLAIM)  # B is ARMED in the same sector: −5
    assert out.decisions[0].fields["components"]["sector"] == -5
    assert out.decisions[0].fields["quality"] == pytest.approx(48.0)


def test_day_loss_gate_and_risk_off_gate():
    eng = armed_engine()
    eng.on_account(ts(9, 20, 48), 1e9, -0.02)
    assert eng.on_trade("A", 10_220, 10, RECLAIM).codes() == [ReasonCode.KMP_G_DAY_LOSS]
    eng2 = armed_engine()
    eng2.on_index(ts(9, 20, 30), "KOSDAQ", 985, 1_000)
    out = eng2.on_clock(ts(9, 20, 31))
    regime = [d for d in out.decisions if d.code is ReasonCode.KMP_REGIME][0]
    assert regime.fields["risk_off"] and regime.fields["kosdaq_chg"] == pytest.approx(-0.015)
    assert eng2.on_trade("A", 10_220, 10, RECLAIM).codes() == [ReasonCode.KMP_G_RISK_OFF]


def test_no_entry_before_0916_or_from_1000():
    eng = scanned_engine()
    feed_volume_bars(eng, minute=15)
    eng.on_trade("A", 10_220, 10, ts(9, 15, 10))  # before the entry window: not a break
    eng.on_trade("A", 10_200, 10, ts(9, 15, 20))
    eng.on_quote("A", ts(9, 15, 30), 10_210, 10_220)
    out = eng.on_trade("A", 10_220, 10, ts(9, 15, 40))
    assert out.codes() == [] and not out.actions and eng.state_of("A") is State.WATCH
    eng2 = armed_engine(minute=59)
    out = eng2.on_trade("A", 10_220, 10, ts(10, 0))
    assert out.codes() == [ReasonCode.KMP_WINDOW_END] and eng2.state_of("A") is State.DONE


# ------------------------------------------------------------------ OMS replies, fills, order timeout


def test_deferred_returns_to_armed_and_waits_for_cooldown():
    eng, a = entered()
    until = ts(9, 21, 10)
    out = eng.on_intent_result("A", ts(9, 20, 51), "DEFERRED", cooldown_until=until)
    assert out.codes() == [ReasonCode.KMP_ENTRY_DEFERRED] and eng.state_of("A") is State.ARMED
    assert eng.on_trade("A", 10_220, 10, ts(9, 21)).codes() == [ReasonCode.KMP_G_RETRY_WAIT]
    eng.on_bar("A", bar("A", ts(9, 20), 10_200, 10_230, 10_200, 10_220, 15_000))  # keeps rvol ≥ 2 at 09:21
    eng.on_quote("A", ts(9, 21, 9), 10_210, 10_220)
    out = eng.on_trade("A", 10_220, 10, ts(9, 21, 11))
    (b,) = out.actions
    assert isinstance(b, EnterAction) and b.idempotency_key != a.idempotency_key


def test_rejected_is_done():
    eng, _ = entered()
    out = eng.on_intent_result("A", ts(9, 20, 51), "REJECTED", message="daily loss warn")
    assert out.codes() == [ReasonCode.KMP_ENTRY_REJECTED] and eng.state_of("A") is State.DONE


def test_missed_fill_after_30s_cancels():
    eng, _ = entered()
    assert not [a for a in eng.on_clock(ts(9, 21, 19)).actions]
    out = eng.on_clock(ts(9, 21, 20))
    assert [type(a) for a in out.actions] == [CancelAction]
    assert out.actions[0].reason is ReasonCode.KMP_MISSED_FILL
    assert ReasonCode.KMP_MISSED_FILL in out.codes() and eng.state_of("A") is State.DONE


def test_order_closed_by_oms_without_fill_is_missed():
    eng, _ = entered()
    out = eng.on_order_closed("A", ts(9, 21, 20), filled_qty=0)
    assert out.codes() == [ReasonCode.KMP_MISSED_FILL] and not out.actions


def test_fill_moves_to_position_and_publishes_stops():
    eng, a = entered()
    out = eng.on_fill("A", "BUY", a.qty, 10_230, ts(9, 20, 52))
    assert eng.state_of("A") is State.IN_POSITION
    (m,) = out.actions
    assert isinstance(m, ModifyRiskAction)
    atr = eng.syms["A"].order.atr
    expected = entry_stops(10_200, 10_230, atr)
    pos = eng.position_of("A")
    assert m.hard_stop_px == pytest.approx(10_230 - 1.2 * atr)  # recomputed from the fill
    assert pos.initial_stop == pytest.approx(expected.initial_stop) and m.stop_px == pos.initial_stop
    assert pos.r == pytest.approx(10_230 - expected.initial_stop)
    assert m.time_stop_ts == ts(14, 30)
    assert not eng.on_clock(ts(9, 21, 25)).actions  # fully filled: nothing to cancel


def test_partial_fill_kept_at_timeout():
    eng, a = entered()
    eng.on_fill("A", "BUY", 100, 10_230, ts(9, 20, 55))
    assert eng.state_of("A") is State.IN_POSITION
    out = eng.on_clock(ts(9, 21, 20))
    assert [type(x) for x in out.actions] == [CancelAction]
    assert out.actions[0].reason is ReasonCode.KMP_PARTIAL_KEPT and eng.position_of("A").qty == 100


def test_missed_fill_alert():
    p = KmpParams(missed_fill_alert_min_tries=2, missed_fill_alert_ratio=0.3)
    syms = ("A", "B")
    eng = armed_engine(syms, p, caches=[cache("A", sector="X"), cache("B", sector="Y")])
    eng.on_trade("A", 10_220, 10, RECLAIM)
    eng.on_trade("B", 10_220, 10, RECLAIM)
    out = eng.on_clock(ts(9, 21, 20))
    alerts = [d for d in out.decisions if d.alert]
    assert [d.code for d in alerts] == [ReasonCode.KMP_ALERT_MISSED_FILLS]


def test_vi_block_alert_after_three_blocks():
    syms = ("A", "B", "C")
    eng = armed_engine(syms, caches=[cache(s, sector=s) for s in syms], vi_ref=10_100)
    codes = []
    for s in syms:
        codes += eng.on_trade(s, 10_220, 10, RECLAIM).codes()
    assert codes == [
        ReasonCode.KMP_VI_WALL,
        ReasonCode.KMP_VI_WALL,
        ReasonCode.KMP_VI_WALL,
        ReasonCode.KMP_ALERT_VI_BLOCKS,
    ]
    # the same symbol still blocked on the next tick is the same block episode: no new count
    assert eng.on_trade("A", 10_220, 10, ts(9, 20, 56)).codes() == [ReasonCode.KMP_VI_WALL]


# ------------------------------------------------------------------ exits


def test_hard_stop_exit_and_close():
    eng, a = filled()
    stop = eng.position_of("A").initial_stop
    eng.on_quote("A", ts(9, 21, 59), 10_190, 10_200)
    out = eng.on_trade("A", stop, 10, ts(9, 22))
    (x,) = out.actions
    assert isinstance(x, ExitAction) and x.reason is ReasonCode.KMP_X_STOP and x.qty is None
    assert x.ref_price == 10_190  # best bid of the fresh quote
    assert x.limit_price == 10_150  # round_down(10,190·0.997) beats 3 ticks
    eng.syms["A"].quote_ts = ts(9, 21)  # stale quote → ref = last
    # still open 20 s later: the working sell is cancelled first (the OMS allows one sell at a time) …
    (cancel,) = eng.on_clock(ts(9, 22, 20)).actions
    assert isinstance(cancel, CancelAction) and cancel.symbol == "A"
    assert not eng.on_clock(ts(9, 22, 30)).actions
    # … and the re-priced exit goes one retry period later
    (again,) = eng.on_clock(ts(9, 22, 40)).actions
    assert isinstance(again, ExitAction) and again.ref_price == stop
    assert eng.state_of("A") is State.EXITING
    out = eng.on_fill("A", "SELL", a.qty, 10_180, ts(9, 22, 1))
    closed = [d for d in out.decisions if d.code is ReasonCode.KMP_POSITION_CLOSED][0]
    assert closed.fields["reason"] == "KMP_X_STOP"
    assert closed.fields["realized_pnl"] == pytest.approx(a.qty * (10_180 - 10_230))
    assert eng.state_of("A") is State.DONE


def test_early_fail_on_a_1m_close():
    eng, _ = filled()
    # 09:21 bar closes 10,190: below OR_high 10,200 and below VWAP? VWAP ≈ 10,13x → not below
    assert not eng.on_bar("A", bar("A", ts(9, 21), 10_230, 10_240, 10_185, 10_190, 100)).actions
    out = eng.on_bar("A", bar("A", ts(9, 22), 10_190, 10_195, 10_185, 10_120, 100))
    assert [a.reason for a in out.actions] == [ReasonCode.KMP_X_EARLY_FAIL]


def test_one_close_check_per_minute():
    eng, _ = filled()
    eng.on_bar("A", bar("A", ts(9, 22), 10_230, 10_240, 10_225, 10_235, 100))
    # a REST correction of the same minute updates data but never re-runs the close rules
    assert not eng.on_bar("A", bar("A", ts(9, 22), 10_190, 10_195, 10_100, 10_100, 100)).actions


def test_exit_retry_when_position_still_open():
    eng, a = filled()
    eng.on_trade("A", 10_100, 10, ts(9, 22))
    assert not eng.on_clock(ts(9, 22, 19)).actions
    out = eng.on_clock(ts(9, 22, 20))
    (c,) = out.actions  # the working sell is cancelled first: the OMS refuses a second sell while one works
    assert isinstance(c, CancelAction) and ReasonCode.KMP_EXIT_RETRY in out.codes()
    out = eng.on_clock(ts(9, 22, 40))
    (x,) = out.actions
    assert isinstance(x, ExitAction) and x.reason is ReasonCode.KMP_X_STOP and ReasonCode.KMP_EXIT_RETRY in out.codes()


def test_external_sell_closes_position():
    eng, a = filled()
    out = eng.on_fill("A", "SELL", a.qty, 10_300, ts(9, 40))
    assert [d.fields["reason"] for d in out.decisions if d.code is ReasonCode.KMP_POSITION_CLOSED] == ["KMP_X_EXTERNAL"]
    assert eng.state_of("A") is State.DONE


def test_eod_flatten_at_1430():
    eng, _ = filled()
    eng.on_clock(ts(10, 0))
    assert not [a for a in eng.on_clock(ts(14, 29, 59)).actions]
    out = eng.on_clock(ts(14, 30))
    assert [type(a) for a in out.actions] == [FlattenAction]
    assert out.actions[0].reason is ReasonCode.KMP_X_EOD and eng.state_of("A") is State.EXITING
    # a position adopted later that day is exited at once
    eng.on_position_recovered("B", 10, 5_000, ts(14, 40), stop_px=4_900)
    out = eng.on_clock(ts(14, 40, 1))
    assert [(type(a), a.symbol, a.reason) for a in out.actions] == [
        (CancelAction, "A", ReasonCode.KMP_X_EOD),  # A's flatten not filled after 20 s: cancel, then re-price
        (ExitAction, "B", ReasonCode.KMP_X_EOD),
    ]
    assert [(type(a), a.symbol) for a in eng.on_clock(ts(14, 40, 21)).actions] == [
        (ExitAction, "A"),  # A re-priced after its cancel
        (CancelAction, "B"),  # B's first retry step
    ]


def test_risk_off_flattens_once_per_episode():
    eng, _ = filled()
    eng.on_index(ts(9, 30), "KOSPI", 980, 1_000)
    out = eng.on_clock(ts(9, 30, 1))
    assert [type(a) for a in out.actions] == [FlattenAction] and out.actions[0].reason is ReasonCode.KMP_X_RISK
    assert not [a for a in eng.on_clock(ts(9, 30, 16)).actions if isinstance(a, FlattenAction)]


def test_day_loss_3pct_flattens_and_cancels_working_entries():
    eng = armed_engine(("A", "B"), caches=[cache("A", sector="X"), cache("B", sector="Y")])
    eng.on_trade("A", 10_220, 10, RECLAIM)
    eng.on_intent_result("A", ts(9, 20, 51), "ACCEPTED")
    eng.on_fill("A", "BUY", 100, 10_230, ts(9, 20, 52))
    eng.on_trade("B", 10_220, 10, ts(9, 20, 53))
    assert eng.state_of("B") is State.ORDER_WORKING
    out = eng.on_account(ts(9, 21), 1e9, -0.03)
    kinds = [(type(a).__name__, a.symbol) for a in out.actions]
    assert kinds == [("CancelAction", "A"), ("CancelAction", "B"), ("FlattenAction", "*")]
    assert eng.state_of("A") is State.EXITING and eng.state_of("B") is State.DONE


def test_oms_halt_is_risk_off():
    eng, _ = filled()
    out = eng.on_account(ts(9, 30), 1e9, -0.01, halt=True)
    assert any(isinstance(a, FlattenAction) for a in out.actions)


# ------------------------------------------------------------------ clock, window end, subscriptions


def test_window_end_releases_slots_and_keeps_held():
    eng, _ = filled()
    eng.on_slots(ts(9, 15, 1), [], {})
    subs = eng.desired_subscriptions(ts(9, 30))
    assert subs == {"A": frozenset({"trades", "quotes"})}
    eng2 = scanned_engine(["A", "B"])
    assert eng2.desired_subscriptions(ts(9, 20)) == {"A": frozenset({"trades"}), "B": frozenset({"trades"})}
    out = eng2.on_clock(ts(10, 0))
    end = [d for d in out.decisions if d.code is ReasonCode.KMP_WINDOW_END][0]
    assert end.fields["ended"] == ["A", "B"]
    assert eng2.desired_subscriptions(ts(10, 0)) == {}
    assert eng2.breadth_poll_symbols(ts(10, 0)) == []


def test_regime_recomputed_every_15s_with_breadth():
    p = KmpParams(breadth_min=1)
    eng = scanned_engine(params=p)
    feed_volume_bars(eng, minute=20)
    eng.on_trade("A", 10_200, 10, ts(9, 20, 1))
    out = eng.on_clock(ts(9, 20, 2))
    (r,) = [d for d in out.decisions if d.code is ReasonCode.KMP_REGIME]
    assert r.fields["breadth"] == 1 and r.fields["leaders"] == ["A"] and r.fields["regime_ok"]
    assert r.fields["program"]["regime"] == "mixed"
    assert not [d for d in eng.on_clock(ts(9, 20, 16)).decisions if d.code is ReasonCode.KMP_REGIME]
    out = eng.on_clock(ts(9, 22, 30))  # data 149 s old → no leader
    (r,) = [d for d in out.decisions if d.code is ReasonCode.KMP_REGIME]
    assert r.fields["breadth"] == 0


def test_position_recovered_with_default_stop():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [])
    out = eng.on_position_recovered("Z", 50, 10_000, ts(9, 40))
    (m,) = out.actions
    assert isinstance(m, ModifyRiskAction) and m.stop_px == pytest.approx(9_850)
    assert eng.position_of("Z").r == pytest.approx(150)
    assert eng.syms["Z"].sector == "UNKNOWN:Z"
    assert eng.desired_subscriptions(ts(9, 40)) == {"Z": frozenset({"trades", "quotes"})}
    out = eng.on_trade("Z", 9_850, 1, ts(9, 41))
    assert [a.reason for a in out.actions] == [ReasonCode.KMP_X_STOP]


def test_premarket_keeps_recovered_positions():
    eng = KmpEngine()
    eng.on_position_recovered("Z", 50, 10_000, ts(8, 40), stop_px=9_900)
    eng.premarket(ts(8, 50), [cache("Z")])
    assert eng.state_of("Z") is State.IN_POSITION and eng.syms["Z"].cache is not None


def test_a_recovered_position_closed_before_premarket_ends_stays_done():
    """A late join: the recovered position is stopped out while the premarket still loads; the premarket
    must not put the symbol back in the universe (it could be entered again the same day)."""
    eng = KmpEngine()
    eng.on_position_recovered("Z", 50, 10_000, ts(9, 40), stop_px=9_900)
    eng.on_trade("Z", 9_890, 1, ts(9, 41))
    out = eng.on_fill("Z", "SELL", 50, 9_890, ts(9, 41, 5))
    assert any(d.code is ReasonCode.KMP_POSITION_CLOSED for d in out.decisions)
    eng.premarket(ts(9, 42), [cache("Z"), cache("Y")])
    assert eng.state_of("Z") is State.DONE and eng.state_of("Y") is State.UNIVERSE


# ------------------------------------------------------------------ data edge cases


def test_no_bars_in_a_minute_counts_zero_volume():
    eng = scanned_engine()
    # only the 09:18 bar exists: at 09:20 the last completed minute (09:19) has no bar → rvol from
    # the current minute only
    eng.on_bar("A", bar("A", ts(9, 18), 10_150, 10_180, 10_120, 10_150, 50_000))
    ctx = eng.syms["A"]
    assert eng._rvol(ctx, ts(9, 20, 10)) == 0
    eng.on_trade("A", 10_150, 2_500, ts(9, 20, 20))
    assert eng._rvol(ctx, ts(9, 20, 30)) == pytest.approx(2.5)
    # liquidity window: 09:15–09:19 holds only the 09:18 bar
    assert eng._value_last(ctx, ts(9, 20, 30)) == pytest.approx(50_000 * 10_150)


def test_vwap_continuous_across_rest_and_ticks():
    eng = scanned_engine()
    vwap0 = eng.syms["A"].series.vwap_value
    assert vwap0 == pytest.approx(10_100)
    eng.on_trade("A", 10_300, 1_000, ts(9, 15, 10))
    with_ticks = eng.syms["A"].series.vwap_value
    assert with_ticks == pytest.approx((15_000 * 10_100 + 1_000 * 10_300) / 16_000)
    # the completed 09:15 bar replaces the tick-built minute (same trades → same VWAP, no double count)
    eng.on_bar("A", bar("A", ts(9, 15), 10_300, 10_300, 10_300, 10_300, 1_000))
    assert eng.syms["A"].series.vwap_value == pytest.approx(with_ticks)


def test_missing_program_data_is_neutral_for_size_and_trail():
    # paper: no program sample ever arrives → mixed, ×1.00 in the size, never "outflow" for the trail
    eng, _ = entered()
    entry = [d for d in eng.on_trade("A", 10_220, 10, RECLAIM).decisions]  # already working: no-op
    assert entry == []
    assert eng.program.multiplier(RECLAIM) == 1.0
    assert eng.program.regime(RECLAIM).value == "mixed"
    out = eng.on_program_failure(ts(9, 21), "KOSPI", "timeout")
    assert out.decisions[0].fields["regime"] == "mixed"
    eng.on_program_failure(ts(9, 22), "KOSPI")
    out = eng.on_program_failure(ts(9, 23), "KOSPI")
    assert [d.code for d in out.decisions if d.alert] == [ReasonCode.KMP_ALERT_REST_FAILURES]


def test_trades_of_another_day_and_unknown_symbols_ignored():
    eng = scanned_engine()
    assert not eng.on_trade("A", 99_999, 1, ts(9, 30) + timedelta(days=1)).decisions
    assert eng.syms["A"].series.last_price != 99_999
    assert not eng.on_trade("NOPE", 1, 1, ts(9, 30)).decisions


def test_deterministic_replay():
    def run():
        eng = armed_engine(("A", "B"), caches=[cache("A", sector="X"), cache("B", sector="Y")])
        outs = [
            eng.on_trade("A", 10_220, 10, RECLAIM),
            eng.on_clock(ts(9, 21, 30)),
            eng.on_trade("B", 10_000, 10, ts(9, 21, 31)),
        ]
        return [(o.actions, o.decisions) for o in outs]

    assert run() == run()


def test_regime_silent_in_the_afternoon_when_flat():
    eng = scanned_engine()
    eng.on_clock(ts(10, 0))
    assert ReasonCode.KMP_REGIME not in eng.on_clock(ts(11, 0)).codes()
    eng.on_position_recovered("A", 10, 10_000, ts(11, 0, 5), stop_px=9_900)
    assert ReasonCode.KMP_REGIME in eng.on_clock(ts(11, 0, 30)).codes()


def test_premarket_of_a_new_day_starts_clean():
    eng, _ = entered()
    eng.premarket(ts(8, 50) + timedelta(days=3), [cache("A")])
    assert eng.state_of("A") is State.UNIVERSE and eng.entry_signal_count == 0 and not eng.scan_done


def test_scan_ignores_an_in_progress_bar():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A")])
    bars = or_bars("A") + [bar("A", ts(9, 15), 10_100, 10_100, 10_100, 10_100, 7)]
    eng.scan(ts(9, 15, 2), {"A": bars})
    eng.on_trade("A", 10_100, 5, ts(9, 15, 3))
    assert eng.syms["A"].series.volume(9 * 60 + 15) == 5


def _program(eng: KmpEngine, sign: int) -> None:
    for m in ("KOSPI", "KOSDAQ"):
        eng.on_program(ts(9, 19, 30), m, buy_cum=1_000, sell_cum=1_000)
        eng.on_program(ts(9, 20, 30), m, buy_cum=1_000 + max(sign, 0) * 100, sell_cum=1_000 + max(-sign, 0) * 100)


def test_program_inflow_multiplies_size():
    eng = armed_engine()
    _program(eng, +1)
    d = eng.on_trade("A", 10_220, 10, RECLAIM).decisions[0]
    assert d.fields["program"] == "strong_inflow" and d.fields["program_mult"] == pytest.approx(1.10)
    base = d.fields["size"]["qty_base"]
    assert d.fields["size"]["qty_after_mult"] == math.floor(base * 0.5 * (1 - 0.012 * 4) * 1.10 + 1e-9)


def test_program_outflow_tightens_the_trail():
    eng = KmpEngine()
    eng.premarket(ts(8, 50), [cache("A")])
    eng.on_position_recovered("A", 100, 10_000, ts(9, 30), stop_px=9_800, entry_ts=ts(9, 30))
    eng.on_trade("A", 10_600, 10, ts(9, 40))
    for i in range(7):
        eng.on_trade("A", 10_450, 100, ts(9, 54, 10 * i), "BUY")  # imbalance positive
    _program(eng, -1)  # but program outflow
    for m in ("KOSPI", "KOSDAQ"):
        eng.on_program(ts(9, 54, 50), m, buy_cum=1_000, sell_cum=1_200)
    out = eng.on_trade("A", 10_410, 1, ts(9, 55), "BUY")
    assert [a.reason for a in out.actions] == [ReasonCode.KMP_X_TRAIL]
    d = [d for d in out.decisions if d.code is ReasonCode.KMP_X_TRAIL][0]
    assert d.fields["program_outflow"] and d.fields["trail"] == pytest.approx(10_420, abs=0.05)


def test_bar_shapes_sdk_broker_core_and_mappings_are_equivalent():
    from broker_core.models import Bar as CoreBar
    from strategies.kmp.minutes import bar_value
    from strategies.sdk.bars import Bar as SdkBar

    sdk = SdkBar("A", ts(9, 16), 10_100, 10_200, 10_000, 10_150, 100, 1_015_500)
    core = CoreBar("A", ts(9, 16), 10_100, 10_200, 10_000, 10_150, 100, extra={"value": 1_015_500})
    mapping = bar("A", ts(9, 16), 10_100, 10_200, 10_000, 10_150, 100, 1_015_500)
    assert bar_value(sdk) == bar_value(core) == bar_value(mapping) == 1_015_500
    vwaps = []
    for b in (sdk, core, mapping):
        eng = scanned_engine()
        eng.on_bar("A", b)
        vwaps.append(eng.syms["A"].series.vwap_value)
    assert vwaps[0] == vwaps[1] == vwaps[2]


# ------------------------------------------------------------------ entry-window edges (issue W2 3/11)


def test_a_break_before_0916_does_not_start_the_acceptance_clock():
    eng = scanned_engine()
    feed_volume_bars(eng, minute=16)
    early = eng.on_trade("A", 10_220, 10, ts(9, 15, 30))  # above trig 10,210 and VWAP 10,100 at 09:15:30
    assert ReasonCode.KMP_BREAK not in early.codes() and eng.state_of("A") is State.WATCH
    (brk,) = [d for d in eng.on_trade("A", 10_220, 10, ts(9, 16, 5)).decisions if d.code is ReasonCode.KMP_BREAK]
    assert brk.ts == ts(9, 16, 5) and eng.syms["A"].acc.t_break == ts(9, 16, 5)
    eng.on_trade("A", 10_200, 10, ts(9, 16, 20))
    assert eng.state_of("A") is State.ARMED
    # 5 min 10 s after the early print, 4 min 35 s after the real break: still accepting
    assert ReasonCode.KMP_ACCEPT_TIMEOUT not in eng.on_clock(ts(9, 20, 40)).codes()
    assert eng.state_of("A") is State.ARMED
    out = eng.on_clock(ts(9, 21, 6))
    assert ReasonCode.KMP_ACCEPT_TIMEOUT in out.codes() and eng.state_of("A") is State.DONE


def test_a_slot_denial_at_1000_is_the_window_end():
    eng = scanned_engine(["A", "B"])
    out = eng.on_slots(ts(10, 0), [], {"B": "OUTSIDE_WINDOW"})
    assert ReasonCode.KMP_SLOT_DENIED not in out.codes()
    (end,) = [d for d in out.decisions if d.code is ReasonCode.KMP_WINDOW_END]
    assert end.fields["ended"] == ["A", "B"]
    assert {eng.syms[s].done_code for s in "AB"} == {ReasonCode.KMP_WINDOW_END}
    assert ReasonCode.KMP_WINDOW_END not in eng.on_clock(ts(10, 0, 1)).codes()  # closed once


def test_an_eviction_for_the_lease_window_end_is_the_window_end():
    eng = scanned_engine(["A", "B"])
    out = eng.on_slots(ts(9, 59, 59), [], {"B": "EVICTED:WINDOW_END"})  # the OMS's clock a moment ahead
    assert out.codes() == [ReasonCode.KMP_SLOTS, ReasonCode.KMP_WINDOW_END]
    assert eng.syms["B"].done_code is ReasonCode.KMP_WINDOW_END and eng.state_of("A") is State.WATCH
    out = eng.on_slots(ts(9, 59, 59), [], {"A": "LEASE_FULL"})  # a real denial inside the window
    assert out.codes() == [ReasonCode.KMP_SLOTS, ReasonCode.KMP_SLOT_DENIED]


# ------------------------------------------------------------------ K5 breadth scaled to the universe (§6)


def test_breadth_threshold_scales_with_the_universe():
    symbols = [f"{i:06d}" for i in range(60)]
    eng = KmpEngine()
    caches = [cache(s) for s in symbols] + [cache("NOBASE", value_base=None)]
    (pre,) = eng.premarket(ts(8, 50), caches).decisions[:1]
    assert pre.fields["breadth_universe"] == 60 and pre.fields["breadth_min"] == 2  # ceil(8·60/400)
    assert eng.breadth_min == 2
    eng.on_account(ts(8, 55), 1_000_000_000, 0.0)
    eng.scan(ts(9, 15), {s: or_bars(s) for s in symbols[:2]})
    for s in symbols[:2]:
        eng.on_quote(s, ts(9, 15, 1), 10_090, 10_100, vi_ref=10_200)
        feed_volume_bars(eng, s, minute=20)
        eng.on_trade(s, 10_200, 10, ts(9, 20, 1))
    (r,) = [d for d in eng.on_clock(ts(9, 20, 2)).decisions if d.code is ReasonCode.KMP_REGIME]
    assert r.fields["leaders"] == symbols[:2] and r.fields["breadth_min"] == 2 and r.fields["breadth_ok"]
    unscaled = KmpEngine(KmpParams(breadth_reference_universe=None))
    (pre,) = unscaled.premarket(ts(8, 50), caches).decisions[:1]
    assert pre.fields["breadth_min"] == 8


def test_quiet_after_the_window_only_until_the_next_regime_or_the_1430_flatten():
    eng = scanned_engine()
    assert eng.quiet_until(ts(9, 30)) is None  # the entry window is open: every second counts
    eng.on_clock(ts(10, 0))  # A never armed: the window closes with every symbol idle
    assert eng.quiet_until(ts(10, 0, 1)) == ts(10, 0, 15)  # the next 15-s regime
    eng.on_clock(ts(14, 29, 50))
    assert eng.quiet_until(ts(14, 29, 51)) == ts(14, 30)  # the flatten comes first
    eng.on_clock(ts(14, 30))
    assert eng.quiet_until(ts(14, 30, 1)) == ts(14, 30, 5)  # 15 s after the 14:29:50 regime
    eng.on_position_recovered("B", 10, 5_000, ts(14, 40), stop_px=4_900)
    assert eng.quiet_until(ts(14, 40)) is None  # a position: its exits are checked every second


def test_a_closed_position_leaves_the_engine_quiet():
    eng, _ = filled()
    eng.on_clock(ts(10, 0))
    assert eng.quiet_until(ts(10, 0, 1)) is None  # held
    eng.on_fill("A", "SELL", eng.position_of("A").qty, 10_100, ts(10, 5))
    assert eng.state_of("A") is State.DONE
    assert eng.quiet_until(ts(10, 5, 1)) is not None
