"""K20: trade slots for candidates, quote slots on freed slots, only held symbols after 10:00."""

from __future__ import annotations

from strategies.kmp.config import KmpParams
from strategies.kmp.fsm import State
from strategies.kmp.subscriptions import QUOTES, TRADES, SubView, plan_subscriptions

T, Q = frozenset({TRADES}), frozenset({TRADES, QUOTES})


def v(sym, state, last=None, trig=10_210, held=False):
    return SubView(sym, state, last, trig, held)


def test_candidates_get_trades_and_done_symbols_nothing():
    plan = plan_subscriptions(
        [v("A", State.CANDIDATE), v("B", State.WATCH), v("C", State.DONE), v("D", State.UNIVERSE)], window_open=True
    )
    assert plan == {"A": T, "B": T}


def test_quotes_for_armed_and_wait_near_trig_and_held():
    plan = plan_subscriptions(
        [
            v("A", State.ARMED),
            v("B", State.WAIT_ACCEPTANCE, last=10_260),  # 5 ticks above trig
            v("C", State.WAIT_ACCEPTANCE, last=10_270),  # 6 ticks: no quotes
            v("D", State.ORDER_WORKING, held=True),
            v("E", State.IN_POSITION, held=True),
            v("F", State.EXITING, held=True),
        ],
        window_open=True,
    )
    assert plan == {"A": Q, "B": Q, "C": T, "D": Q, "E": Q, "F": Q}


def test_quote_slots_only_from_freed_slots():
    views = [v(f"S{i:02d}", State.WATCH) for i in range(18)] + [v("A1", State.ARMED), v("A2", State.ARMED)]
    plan = plan_subscriptions(views, window_open=True)
    assert sum(len(c) for c in plan.values()) == 20
    assert all(c == T for c in plan.values())  # no free slot for quotes
    views[0] = v("S00", State.DONE)
    plan = plan_subscriptions(views, window_open=True)
    assert plan["A1"] == Q and plan["A2"] == T  # one slot freed → one quote


def test_after_window_only_held():
    plan = plan_subscriptions(
        [v("A", State.WATCH), v("B", State.IN_POSITION, held=True), v("C", State.DONE, held=True)], window_open=False
    )
    assert plan == {"B": Q, "C": Q}


def test_ticks_carry_quotes_means_no_quote_channel():
    p = KmpParams(ticks_carry_quotes=True)
    plan = plan_subscriptions([v("A", State.ARMED), v("B", State.IN_POSITION, held=True)], True, p)
    assert plan == {"A": T, "B": T}
