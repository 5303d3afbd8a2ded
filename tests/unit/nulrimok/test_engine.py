"""NulrimokEngine across sessions: entries, order windows, OMS replies, exits, tags, recovery, monitoring."""

from __future__ import annotations

from datetime import timedelta

from strategies.nulrimok.decisions import CancelAction, EnterAction, ExitAction, ModifyRiskAction, ReduceAction
from strategies.nulrimok.engine import NulrimokEngine, sessions_between
from strategies.nulrimok.exits import GRIND, MEAN_REVERSION, MOMENTUM
from strategies.nulrimok.regime import regime_score, tier_of
from tests.unit.nulrimok._helpers import (
    D1,
    D2,
    D3,
    D4,
    P,
    at,
    bar,
    codes,
    decision,
    engine,
    features,
    history,
    selection,
)


def _armed(e: NulrimokEngine, sym: str, day, tradable=None, feats=None) -> list:
    """Watchlist of ``day`` and a trigger on its 10:00 bar, confirmed (rule B) on the 10:30 bar: returns actions."""
    e.on_selection(at(day, 8, 5), selection(day, tradable or [sym], feats=feats), {sym: history(sym, day, 20)})
    e.on_bar30(sym, bar(sym, at(day, 10, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(day, 10, 30, 5))
    out = e.on_bar30(sym, bar(sym, at(day, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(day, 11, 0, 5))
    return out.actions


def test_fx_skipped_scores_over_the_other_three() -> None:
    assert regime_score(True, True, False, None, P) == 0.6875 and tier_of(0.6875, P)[0] == "A"
    assert tier_of(regime_score(True, False, True, None, P), P)[0] == "B"  # 0.50 / 0.80 = 0.625


def test_entry_fill_stop_published_and_the_position_survives_the_night() -> None:
    e = engine()
    (enter,) = _armed(e, "A", D3)
    assert isinstance(enter, EnterAction)
    out = e.on_intent_result("A", at(D3, 11, 0, 6), "ENTER", "ACCEPTED")
    assert codes(out) == ["NULRIMOK_ENTRY_ACK"]
    out = e.on_fill("A", "BUY", 1_000, 10_000, at(D3, 11, 3))
    (modify,) = out.actions
    assert isinstance(modify, ModifyRiskAction) and modify.stop_px == 9_980
    assert e.position_of("A").entry_ts == at(D3, 11, 3) and e.position_of("A").swing_high == 10_400
    e.on_order_closed("A", at(D3, 11, 3), 1_000)
    e.on_price("A", 10_020, at(D3, 15, 9))
    e.on_clock(at(D3, 15, 10))  # entry day +0.2%: kept

    out = e.on_selection(at(D4, 8, 5), selection(D4, ["B"], extra=[features("A", avwap_ref=10_010)]))
    pos = e.position_of("A")
    assert pos.sessions_after == 1 and pos.avwap_ref == 10_010  # today's DSE AVWAP
    assert e.monitor.active[0] == "A"  # held positions first
    assert e.bar_symbols(at(D4, 9, 30, 5)) == ["A"]  # before 10:00: held only (REST)
    assert e.desired_subscriptions(at(D4, 9, 59)) == set()
    assert e.desired_subscriptions(at(D4, 10, 0)) == {"A", "B"}
    out = e.on_price("A", 9_975, at(D4, 10, 12))
    (ex,) = out.actions
    assert isinstance(ex, ExitAction) and ex.reason.value == "NULRIMOK_X_STOP"
    assert ex.idempotency_key == "NULRIMOK:A:EXIT:20260227T101200:X_STOP"
    assert not e.on_price("A", 9_970, at(D4, 10, 12, 30)).actions  # one exit in flight
    e.on_fill("A", "SELL", 400, 9_960, at(D4, 10, 12, 20))  # partial: the exit is progressing
    assert not e.on_clock(at(D4, 10, 12, 45)).actions
    stale = e.on_clock(at(D4, 10, 12, 50))  # 30 s without a fill: cancel it first, no second sell
    assert [type(a) for a in stale.actions] == [CancelAction] and "NULRIMOK_EXIT_RETRY" in codes(stale)
    assert not e.on_clock(at(D4, 10, 13, 30)).actions
    again = e.on_exit_order_closed("A", at(D4, 10, 13, 31), "CANCELLED")
    (ex2,) = again.actions
    assert isinstance(ex2, ExitAction) and ex2.idempotency_key.endswith(":X_STOP-r1")
    out = e.on_fill("A", "SELL", 600, 9_960, at(D4, 10, 14))
    closed = decision(out, "NULRIMOK_POSITION_CLOSED")
    assert closed.fields["reason"] == "NULRIMOK_X_STOP" and closed.fields["sessions_after"] == 1
    assert e.position_of("A") is None and "A" not in e.monitor.active


def test_unfilled_entry_is_cancelled_at_the_next_bar_close_and_the_ticker_can_arm_again() -> None:
    e = engine()
    _armed(e, "A", D4)
    out = e.on_bar30("A", bar("A", at(D4, 11, 0), 10_080, 10_100, 10_040, 10_090, 30_000), at(D4, 11, 30, 5))
    assert decision(out, "NULRIMOK_ENTRY_CANCEL").fields["reason"] == "NEXT_BAR"
    assert isinstance(out.actions[0], CancelAction)
    out = e.on_order_closed("A", at(D4, 11, 30, 6), 0)
    assert codes(out) == ["NULRIMOK_MISSED_FILL"] and e.state_of("A").value == "IDLE"


def test_deferred_entry_is_sent_again_at_cooldown_with_a_new_key() -> None:
    e = engine()
    (enter,) = _armed(e, "A", D4)
    out = e.on_intent_result("A", at(D4, 11, 0, 6), "ENTER", "DEFERRED", cooldown_until=at(D4, 11, 1, 6))
    assert codes(out) == ["NULRIMOK_ENTRY_DEFERRED"]
    assert e.on_order_closed("A", at(D4, 11, 0, 7), 0).decisions == []  # the deferred intent had no order
    assert not e.on_clock(at(D4, 11, 1)).actions
    (again,) = e.on_clock(at(D4, 11, 1, 6)).actions
    assert isinstance(again, EnterAction) and again.idempotency_key == enter.idempotency_key + ":r1"
    assert again.qty == enter.qty and again.cancel_after_sec < enter.cancel_after_sec


def test_modified_and_rejected_replies() -> None:
    e = engine()
    _armed(e, "A", D4)
    e.on_intent_result("A", at(D4, 11, 0, 6), "ENTER", "MODIFIED", modified_qty=700)
    assert e.ctxs["A"].order.qty == 700
    e2 = engine()
    _armed(e2, "A", D4)
    out = e2.on_intent_result("A", at(D4, 11, 0, 6), "ENTER", "REJECTED", message="SECTOR_LIMIT: ...")
    assert codes(out) == ["NULRIMOK_ENTRY_REJECTED"] and e2.state_of("A").value == "IDLE"


def test_bars_before_ten_can_trigger_but_the_entry_waits_for_ten() -> None:
    """N16: at 10:00 the 09:00 and 09:30 bars arrive together; a setup on them enters from 10:00 only."""
    early = engine()
    early.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20)})
    early.on_bar30("A", bar("A", at(D4, 9, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(D4, 9, 59))
    out = early.on_bar30("A", bar("A", at(D4, 9, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D4, 9, 59))
    assert "NULRIMOK_G_TIME" in codes(out) and not out.actions
    e = engine()
    e.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20)})
    e.on_bar30("A", bar("A", at(D4, 9, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(D4, 10, 0, 5))
    out = e.on_bar30("A", bar("A", at(D4, 9, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D4, 10, 0, 5))
    (enter,) = out.actions
    assert isinstance(enter, EnterAction) and enter.cancel_after_sec == 1_800  # to 10:30, + 5 s margin


def test_no_entry_under_tier_c_nor_without_nav() -> None:
    c = engine()
    c.on_selection(at(D4, 8, 5), selection(D4, ["A"], tier="C"), {"A": history("A", D4, 20)})
    assert c.bar_symbols(at(D4, 10, 30, 5)) == []
    out = c.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(D4, 10, 30, 5))
    assert out.decisions == [] and c.state_of("A").value == "IDLE"
    n = NulrimokEngine(P)  # no account read yet
    n.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20)})
    n.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(D4, 10, 30, 5))
    out = n.on_bar30("A", bar("A", at(D4, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D4, 11, 0, 5))
    assert "NULRIMOK_G_NAV_NA" in codes(out) and not out.actions


def test_entry_day_closed_ticker_is_not_entered_again() -> None:
    e = engine()
    _armed(e, "A", D4)
    e.on_fill("A", "BUY", 100, 10_000, at(D4, 11, 2))
    e.on_order_closed("A", at(D4, 11, 2), 100)
    e.on_price("A", 9_900, at(D4, 11, 5))
    e.on_fill("A", "SELL", 100, 9_900, at(D4, 11, 6))
    e.monitor.active.append("A")
    out = e.on_bar30("A", bar("A", at(D4, 11, 30), 10_050, 10_120, 9_980, 10_010, 10_000), at(D4, 12, 0, 5))
    assert "NULRIMOK_TRIGGER" not in codes(out)


def _held(day=D4, tag=None, **kw) -> NulrimokEngine:
    e = engine()
    e.on_position_recovered(
        "A",
        1_000,
        10_000,
        at(day, 8, 0),
        stop_px=9_500,
        entry_ts=at(D2, 11, 0),
        sessions_after=kw.pop("sa", 1),
        avwap_ref=10_000,
        atr30m=100,
        swing_high=10_400,
        snapshot={"entry_ts": at(D2, 11, 0).isoformat(), "tag": tag} if tag else None,
    )
    e.on_selection(at(day, 8, 5), selection(day, [], extra=[features("A", **kw)]), {"A": history("A", day, 20, 10_100)})
    return e


def test_failure_to_reclaim_on_post_fill_bars_three_to_five() -> None:
    e = engine()
    e.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20, 10_072.5)})
    e.on_fill("A", "BUY", 100, 10_000, at(D4, 9, 50))
    outs = []
    lows = [9_960, 9_950, 9_940]
    for k, low in enumerate(lows):
        start = at(D4, 10, 0) + timedelta(minutes=30 * k)
        outs.append(e.on_bar30("A", bar("A", start, 9_990, 9_995, low, 9_985, 90_000), start + timedelta(minutes=30)))
    assert "NULRIMOK_X_NO_RECLAIM" not in codes(outs[1]) and "NULRIMOK_X_NO_RECLAIM" in codes(outs[2])
    assert decision(outs[2], "NULRIMOK_X_NO_RECLAIM").fields["post_bar"] == 3


def test_momentum_tag_and_its_sma10_exit() -> None:
    e = _held()
    out = e.on_price("A", 10_410, at(D4, 10, 5))  # above the 10-session swing high 10,400, session 2 of 3
    assert decision(out, "NULRIMOK_TAG").fields["tag"] == MOMENTUM
    out = e.on_bar30("A", bar("A", at(D4, 10, 0), 10_300, 10_420, 10_050, 10_060, 50_000), at(D4, 10, 30, 5))
    assert "NULRIMOK_X_MOMENTUM" in codes(out)  # 10,060 < SMA10 ≈ 10,096


def test_mean_reversion_tag_reduce_at_target_then_sma5_trail() -> None:
    e = _held(sa=1)
    e.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_130, 10_040, 10_060, 40_000), at(D4, 10, 30, 5))
    e.on_price("A", 10_040, at(D4, 15, 9))
    out = e.on_clock(at(D4, 15, 10))  # MFE 130 ≥ 100, 10,060 ≤ 10,130 − 50, session mean V 40k < 100k
    tag = decision(out, "NULRIMOK_TAG")
    assert tag.fields["tag"] == MEAN_REVERSION and tag.fields["target"] == 10_150
    out = e.on_price("A", 10_150, at(D4, 15, 12))
    (red,) = out.actions
    assert isinstance(red, ReduceAction) and red.qty == 700 and red.reason.value == "NULRIMOK_X_MR_TARGET"
    e.on_fill("A", "SELL", 700, 10_150, at(D4, 15, 13))
    assert e.position_of("A").qty == 300 and e.position_of("A").mr_reduced


def test_grind_tag_exits_when_a_close_under_avwap_is_not_reclaimed_in_two_bars() -> None:
    e = _held(persistence=0.7)
    e.on_price("A", 10_050, at(D4, 15, 9))
    out = e.on_clock(at(D4, 15, 10))
    assert decision(out, "NULRIMOK_TAG").fields["tag"] == GRIND
    day = D4 + timedelta(days=3)  # Monday
    e.on_selection(at(day, 8, 5), selection(day, [], extra=[features("A", persistence=0.7)]))
    closes = [9_990, 9_995, 9_998]
    outs = []
    for k, c in enumerate(closes):
        start = at(day, 10, 0) + timedelta(minutes=30 * k)
        outs.append(e.on_bar30("A", bar("A", start, 10_000, 10_005, 9_985, c, 50_000), start + timedelta(minutes=30)))
    assert not outs[1].actions and "NULRIMOK_X_GRIND" in codes(outs[2])


def test_recovery_restores_the_saved_state_and_counts_sessions_from_the_lrs_dates() -> None:
    e = _held()
    e.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_130, 10_040, 10_060, 40_000), at(D4, 10, 30, 5))
    snap = e.position_snapshot("A")
    assert snap["post_bars"] == 1 and snap["last_bar"] == at(D4, 10, 0).isoformat()
    fresh = NulrimokEngine(P)
    sessions = [D1, D2, D3]
    n = sessions_between(sessions, D2, D4)
    assert n == 2
    out = fresh.on_position_recovered(
        "A", 1_000, 10_000, at(D4, 12, 0), stop_px=9_500, entry_ts=at(D2, 11, 0), sessions_after=n, snapshot=snap
    )
    pos = fresh.position_of("A")
    assert pos.post_bars == 1 and pos.post_high == 10_130 and pos.sessions_after == 2
    assert decision(out, "NULRIMOK_POSITION_RECOVERED").fields["state_restored"] is True
    assert not out.actions  # the OMS already has this stop
    fresh.on_selection(at(D4, 12, 1), selection(D4, [], extra=[features("A")]), {"A": history("A", D4, 20, 10_100)})
    fresh.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_130, 10_040, 10_060, 40_000), at(D4, 12, 1))
    assert fresh.position_of("A").post_bars == 1  # a bar re-fed after a restart is not counted twice
    other = fresh.on_position_recovered("B", 10, 20_000, at(D4, 12, 2))
    assert isinstance(other.actions[0], ModifyRiskAction) and other.actions[0].stop_px == 19_400  # avg − 3%


def test_positions_closed_outside_are_dropped_on_sync() -> None:
    e = _held()
    out = e.sync_allocations(at(D4, 12, 0), {"A": 0})
    assert decision(out, "NULRIMOK_POSITION_CLOSED").fields["reason"] == "NULRIMOK_X_EXTERNAL"


def test_monitoring_set_cap_overflow_refresh_and_denials() -> None:
    e = engine(max_slots=3)
    syms = ["T1", "T2", "T3", "T4", "T5"]
    out = e.on_selection(at(D4, 8, 5), selection(D4, syms))
    mon = decision(out, "NULRIMOK_MONITOR")
    assert mon.fields["active"] == ["T1", "T2", "T3"] and mon.fields["overflow"] == ["T4", "T5"]
    out = e.on_clock(at(D4, 11, 30))  # refresh: the lowest-ranked non-armed ticker goes to the back
    rot = decision(out, "NULRIMOK_ROTATE")
    assert rot.symbol == "T3" and rot.fields["promoted"] == "T4" and e.monitor.overflow == ["T5", "T3"]
    out = e.on_slots(at(D4, 9, 0), [], {"T1": "WINDOW_END"})  # yesterday's slot closing at the open
    assert decision(out, "NULRIMOK_SLOT_DENIED").fields["counted"] is False and "T1" in e.monitor.active
    out = e.on_slots(at(D4, 11, 31), ["T1", "T2"], {"T4": "LEASE_FULL"})
    assert "NULRIMOK_SLOT_DENIED" in codes(out) and e.monitor.cap == 2 and e.monitor.active == ["T1", "T2"]


def test_inactive_tickers_give_their_slot_to_the_overflow_after_two_hours() -> None:
    e = engine(max_slots=2, refresh_times=[])
    e.on_selection(at(D4, 8, 5), selection(D4, ["T1", "T2", "T3"]))
    e.on_price("T1", 10_140, at(D4, 10, 30))  # within band ±1% (9,850.5 … 10,150.5), not in the band
    e.on_price("T2", 10_400, at(D4, 10, 30))  # far from it
    assert not e.on_clock(at(D4, 11, 59, 59)).decisions
    out = e.on_clock(at(D4, 12, 0))  # 2 h since monitoring began at 10:00
    (rot,) = [d for d in out.decisions if d.code.value == "NULRIMOK_ROTATE" and d.fields["reason"] == "INACTIVE"]
    assert rot.symbol == "T2" and rot.fields["promoted"] == "T3"
    assert e.monitor.active == ["T1", "T3"] and e.monitor.overflow == ["T2"]
