from datetime import datetime

import pytest

from broker_core.clock import KST, ManualClock
from oms.core.circuit import BreakerState, CircuitBreaker

T0 = datetime(2026, 2, 27, 9, 0, tzinfo=KST)


def make(**kw):
    clock = ManualClock(T0)
    changes = []
    cb = CircuitBreaker(clock=clock, on_change=lambda a, b: changes.append((a, b)), **kw)
    return cb, clock, changes


def test_defaults_closed_and_allowing():
    cb, _, _ = make()
    assert cb.failure_threshold == 3 and cb.reset_timeout_s == 30
    assert cb.state is BreakerState.CLOSED and cb.allow()


def test_opens_after_threshold_consecutive_failures():
    cb, _, changes = make()
    cb.record_failure()
    cb.record_failure()
    assert cb.state is BreakerState.CLOSED and cb.failures == 2
    cb.record_failure()
    assert cb.state is BreakerState.OPEN and not cb.allow()
    assert cb.opened_at == T0
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]


def test_success_resets_the_count():
    cb, _, _ = make()
    cb.record_failure()
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    cb.record_failure()
    assert cb.state is BreakerState.CLOSED


def test_half_open_after_timeout_then_close_on_success():
    cb, clock, changes = make()
    for _ in range(3):
        cb.record_failure()
    assert cb.retry_at == T0.replace(second=30)
    clock.advance(29.999)
    assert cb.state is BreakerState.OPEN and not cb.allow()
    clock.advance(0.001)
    assert cb.state is BreakerState.HALF_OPEN and cb.retry_at is None
    assert cb.allow()  # the one trial
    assert not cb.allow()  # no second concurrent trial
    cb.record_success()
    assert cb.state is BreakerState.CLOSED and cb.allow() and cb.failures == 0
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_half_open_failure_reopens_with_fresh_timeout():
    cb, clock, _ = make()
    for _ in range(3):
        cb.record_failure()
    clock.advance(30)
    assert cb.allow()
    cb.record_failure()
    assert cb.state is BreakerState.OPEN and cb.opened_at == clock.now()
    clock.advance(29)
    assert not cb.allow()
    clock.advance(1)
    assert cb.allow()


def test_lost_trial_result_does_not_wedge():
    cb, clock, _ = make()
    for _ in range(3):
        cb.record_failure()
    clock.advance(30)
    assert cb.allow()
    clock.advance(10)
    assert not cb.allow()
    clock.advance(20)
    assert cb.allow()  # the trial never reported; another one is let through


def test_results_while_open_are_ignored():
    cb, clock, _ = make()
    for _ in range(3):
        cb.record_failure()
    cb.record_success()
    assert cb.state is BreakerState.OPEN
    clock.advance(20)
    cb.record_failure()
    clock.advance(10)
    assert cb.state is BreakerState.HALF_OPEN  # timeout counted from the first opening


def test_threshold_one_and_trip_reset():
    cb, _, _ = make(failure_threshold=1, reset_timeout_s=5)
    cb.record_failure()
    assert cb.state is BreakerState.OPEN
    cb.reset()
    assert cb.state is BreakerState.CLOSED and cb.allow()
    cb.trip()
    assert cb.state is BreakerState.OPEN


def test_state_values_match_health_contract():
    assert {s.value for s in BreakerState} == {"CLOSED", "OPEN", "HALF_OPEN"}


def test_bad_arguments():
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_timeout_s=-1)


def test_real_clock_default():
    assert CircuitBreaker().allow()


def test_reads_between_refused_orders_do_not_reset_the_count() -> None:
    clock = ManualClock(datetime(2026, 2, 27, 10, 0, tzinfo=KST))
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=30, clock=clock)
    for _ in range(3):
        breaker.record_failure()
        breaker.record_success(resets_count=False)  # a reconciliation cycle answered
    assert breaker.state is BreakerState.OPEN


def test_a_breaker_opened_by_orders_closes_on_an_order_not_on_a_read() -> None:
    clock = ManualClock(datetime(2026, 2, 27, 10, 0, tzinfo=KST))
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(resets_count=False)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_after_a_general_outage_a_read_closes_the_breaker() -> None:
    clock = ManualClock(datetime(2026, 2, 27, 10, 0, tzinfo=KST))
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure(order_call=False)
    clock.advance(30)
    breaker.record_success(resets_count=False)
    assert breaker.state is BreakerState.CLOSED
