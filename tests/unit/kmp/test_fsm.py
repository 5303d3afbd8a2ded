"""§1.5 acceptance machine: break → pullback → reclaim, timeout, support lost."""

from __future__ import annotations

from strategies.kmp.fsm import Acceptance, Event, State
from tests.unit.kmp._helpers import ts

VWAP = 10_100.0  # support = 0.998 · min(10,100, 10,200) = 10,079.8


def acc() -> Acceptance:
    return Acceptance(trig=10_210, or_high=10_200)


def test_break_needs_above_trig_and_vwap():
    a = acc()
    assert a.on_price(10_210, VWAP, ts(9, 20)) is None  # = trig is not a break
    assert a.on_price(10_220, 10_230, ts(9, 20)) is None  # below VWAP
    assert a.on_price(10_220, None, ts(9, 20)) is None  # VWAP unknown
    assert a.on_price(10_220, VWAP, ts(9, 20, 5)) is Event.BREAK
    assert a.state is State.WAIT_ACCEPTANCE and a.t_break == ts(9, 20, 5)


def test_pullback_arms_and_tracks_retest_low():
    a = acc()
    a.on_price(10_220, VWAP, ts(9, 20))
    assert a.on_price(10_230, VWAP, ts(9, 20, 10)) is None  # still above trig
    assert a.on_price(10_210, VWAP, ts(9, 20, 20)) is Event.PULLBACK
    assert a.state is State.ARMED and a.retest_low == 10_210
    a.on_price(10_150, VWAP, ts(9, 20, 30))
    a.on_price(10_190, VWAP, ts(9, 20, 40))
    assert a.retest_low == 10_150


def test_reclaim():
    a = acc()
    a.on_price(10_220, VWAP, ts(9, 20))
    a.on_price(10_200, VWAP, ts(9, 20, 10))
    assert a.on_price(10_220, VWAP, ts(9, 20, 20)) is Event.RECLAIM
    assert a.state is State.ARMED  # the engine decides on the gates
    assert a.on_price(10_220, VWAP, ts(9, 20, 21)) is Event.RECLAIM  # re-tried on every tick


def test_support_lost_even_on_the_pullback_tick():
    a = acc()
    a.on_price(10_220, VWAP, ts(9, 20))
    assert a.on_price(10_070, VWAP, ts(9, 20, 10)) is Event.SUPPORT_LOST
    b = acc()
    b.on_price(10_220, VWAP, ts(9, 20))
    b.on_price(10_100, VWAP, ts(9, 20, 10))
    assert b.on_price(10_079.8, VWAP, ts(9, 20, 20)) is None  # = support holds
    assert b.on_price(10_079, VWAP, ts(9, 20, 30)) is Event.SUPPORT_LOST


def test_timeout_five_minutes_after_break():
    a = acc()
    a.on_price(10_220, VWAP, ts(9, 20))
    assert a.on_clock(ts(9, 25)) is None  # exactly 5 min: not yet
    assert a.on_clock(ts(9, 25, 0.001)) is Event.TIMEOUT
    b = acc()
    b.on_price(10_220, VWAP, ts(9, 20))
    b.on_price(10_200, VWAP, ts(9, 21))
    assert b.on_price(10_220, VWAP, ts(9, 25, 1)) is Event.TIMEOUT  # timeout beats a reclaim


def test_watch_never_times_out():
    a = acc()
    assert a.on_clock(ts(9, 59)) is None


def test_a_break_before_the_entry_window_does_not_count():
    a = Acceptance(trig=10_210, or_high=10_200, not_before=ts(9, 16))
    assert a.on_price(10_220, VWAP, ts(9, 15, 30)) is None  # above trig and VWAP, but before 09:16
    assert a.state is State.WATCH and a.t_break is None
    assert a.on_clock(ts(9, 20, 31)) is None  # no acceptance clock running
    assert a.on_price(10_220, VWAP, ts(9, 16)) is Event.BREAK  # the window's first second counts
    assert a.t_break == ts(9, 16)
    assert a.on_clock(ts(9, 21)) is None and a.on_clock(ts(9, 21, 0.001)) is Event.TIMEOUT
