"""§2.4 state machine: acceptance, invalidation modes, 14:30 expiry, cooldown, P8 close counting."""

from __future__ import annotations

from datetime import time

from broker_core.contract.reasons import ReasonCode
from strategies.kpr.config import KprParams
from strategies.kpr.fsm import Acceptance, Event, State, acceptance_adders, required_closes
from strategies.kpr.setup import check_setup, lock_setup
from tests.unit.kpr._helpers import engine, feed, panic_path, reclaim_bar, ts

P = KprParams()


def _acc(p: KprParams = P) -> Acceptance:
    chk = check_setup(10_100, 600, 9_650, 10_000, 610, p)
    return Acceptance(lock_setup(chk, 9_600, 10_100, 10_000, 9_650, ts(10, 11), 610, p))


def test_high_reaching_reclaim_starts_acceptance_and_counts_only_closes_above():
    acc = _acc()  # reclaim 9,628.8, stop 9,571.2
    assert acc.on_bar(9_628, 9_580, 9_600, ts(10, 12), P) == [] and acc.state is State.SETUP_DETECTED
    assert acc.on_bar(9_630, 9_580, 9_620, ts(10, 13), P) == [Event.ACCEPTING]  # C < reclaim: not counted
    assert acc.state is State.ACCEPTING and acc.closes == 0
    assert acc.on_bar(9_640, 9_600, 9_629, ts(10, 14), P) == [Event.CLOSE]
    assert acc.on_bar(9_640, 9_600, 9_610, ts(10, 15), P) == []  # not consecutive: still 1
    assert acc.on_bar(9_640, 9_600, 9_635, ts(10, 16), P) == [Event.CLOSE] and acc.closes == 2


def test_the_bar_reaching_reclaim_counts_when_it_closes_above():
    acc = _acc()
    assert acc.on_bar(9_700, 9_600, 9_650, ts(10, 12), P) == [Event.ACCEPTING, Event.CLOSE] and acc.closes == 1


def test_invalidation_on_close_mode():
    p = KprParams(invalidation_on="close")
    acc = _acc(p)
    assert acc.on_bar(9_620, 9_560, 9_580, ts(10, 12), p) == []  # low below the stop, close above: kept
    assert acc.state is State.SETUP_DETECTED
    assert acc.on_bar(9_620, 9_560, 9_571, ts(10, 13), p) == [Event.INVALIDATED]


def test_expiry_at_14_30():
    acc = _acc()
    assert acc.on_bar(9_700, 9_600, 9_650, ts(14, 30), P) == [Event.EXPIRED] and acc.state is State.IDLE


def test_adders_each_add_one():
    base = dict(
        micro_is_proxy=False,
        investor_stale=False,
        t=time(10, 0),
        index_change=None,
        program_outflow=None,
        program_unavailable=False,
        p=P,
    )
    assert required_closes(acceptance_adders(**base), P) == 2
    assert acceptance_adders(**{**base, "index_change": -0.01}) == ["index_unfavourable"]
    assert acceptance_adders(**{**base, "index_change": -0.009}) == []
    assert acceptance_adders(**{**base, "program_outflow": True}) == ["program_outflow"]
    assert acceptance_adders(**{**base, "program_unavailable": True}) == []
    p = KprParams(program_unavailable_adder=True)
    assert acceptance_adders(**{**base, "program_unavailable": True, "p": p}) == ["program_unavailable"]


def test_engine_invalidated_cools_down_5_min():
    eng = engine()
    panic_path(eng)
    feed(eng, "A", ts(10, 11), 9_600, 9_620, 9_560, 9_590, 1_000)  # low 9,560 ≤ 9,571.2
    assert eng.state_of("A") is State.INVALIDATED
    assert eng.on_clock(ts(10, 16, 55)).codes() == []
    out = eng.on_clock(ts(10, 17))  # invalidated at the bar's end 10:12 + 5 min
    assert ReasonCode.KPR_COOLDOWN_END in out.codes() and eng.state_of("A") is State.IDLE


def test_engine_new_setup_needs_a_fresh_lock_after_the_cooldown():
    eng = engine(params=KprParams(invalidation_cooldown_min=2))
    panic_path(eng)
    feed(eng, "A", ts(10, 11), 9_600, 9_620, 9_560, 9_590, 1_000)
    out = feed(eng, "A", ts(10, 12), 9_590, 9_600, 9_570, 9_580, 100)  # P6 holds, but still cooling down
    assert ReasonCode.KPR_SETUP_PANIC not in out.codes() and eng.state_of("A") is State.INVALIDATED
    out = feed(eng, "A", ts(10, 13), 9_590, 9_600, 9_570, 9_580, 100)  # 10:14 = invalidated 10:12 + 2 min
    d = next(d for d in out.decisions if d.code is ReasonCode.KPR_SETUP_PANIC)
    assert d.fields["setup_low"] == 9_560 and d.fields["dt_min"] == 13


def test_engine_setup_expires_at_14_30_and_no_setup_after():
    eng = engine()
    panic_path(eng, hod=ts(14, 5))  # setup on the 14:15 bar
    assert eng.state_of("A") is State.SETUP_DETECTED
    out = eng.on_clock(ts(14, 30))
    assert ReasonCode.KPR_SETUP_EXPIRED in out.codes() and eng.state_of("A") is State.IDLE
    out = feed(eng, "A", ts(14, 30), 9_600, 9_600, 9_500, 9_550, 100)
    assert ReasonCode.KPR_SETUP_PANIC not in out.codes()


def test_engine_first_bar_after_the_lock_is_the_first_evaluated():
    eng = engine()
    out = panic_path(eng)  # the panic bar closes 9,650 ≥ reclaim 9,628.8 but is the lock bar
    assert ReasonCode.KPR_ACCEPT_CLOSE not in out.codes()
    out = reclaim_bar(eng, ts(10, 11))
    assert out.codes()[:2] == [ReasonCode.KPR_ACCEPTING, ReasonCode.KPR_ACCEPT_CLOSE]
