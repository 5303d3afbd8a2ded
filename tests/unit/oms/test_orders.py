from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.models import BrokerOrder, OrderStatus, OrderType, Side
from oms.core.orders import (
    CANCELLABLE_STATES,
    TRANSITIONS,
    InvalidTransition,
    OverfillError,
    apply_broker_snapshot,
    apply_fill,
    can_cancel,
    can_transition,
    created_event,
    transition,
)
from oms.core.types import OrderRecord, OrderState

S = OrderState
T0 = datetime(2026, 2, 27, 9, 30, tzinfo=KST)
T1 = T0 + timedelta(seconds=1)


def order(state=S.PENDING_SUBMIT, qty=100, filled=0, avg=0.0) -> OrderRecord:
    return OrderRecord(
        order_id="VPS1-01ABC",
        intent_id="in_1",
        strategy_id="KMP",
        symbol="005930",
        side="BUY",
        qty=qty,
        order_type=OrderType.LIMIT,
        state=state,
        created_at=T0,
        updated_at=T0,
        limit_price=10_000.0,
        filled_qty=filled,
        avg_fill_price=avg,
    )


def broker(status, filled=0, qty=100, reason=None) -> BrokerOrder:
    return BrokerOrder(
        client_order_id="VPS1-01ABC",
        broker_order_id="B-77",
        symbol="005930",
        side=Side.BUY,
        qty=qty,
        order_type=OrderType.LIMIT,
        limit_price=10_000.0,
        status=status,
        created_at=T0,
        updated_at=T0,
        filled_qty=filled,
        reason=reason,
    )


EXPECTED = {
    S.HELD: {S.PENDING_SUBMIT, S.CANCELLED},
    S.PENDING_SUBMIT: {S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED},
    S.SUBMITTED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED, S.REJECTED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED},
    S.PENDING_CANCEL: {S.CANCELLED, S.FILLED, S.PARTIALLY_FILLED, S.EXPIRED, S.SUBMITTED},
    S.CANCELLED: {S.FILLED},
    S.EXPIRED: {S.FILLED},
    S.REJECTED: {S.FILLED},
    S.FILLED: set(),
}


def test_table_matches_spec_and_covers_every_state():
    assert set(TRANSITIONS) == set(OrderState)
    assert {k: set(v) for k, v in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize("src,dst", [(a, b) for a in OrderState for b in OrderState])
def test_transition_allowed_or_refused(src, dst):
    o = order(state=src)
    if dst in EXPECTED[src]:
        e = transition(o, dst, T1, reason="R", detail="D")
        assert o.state is dst and o.updated_at == T1 and o.reason == "R"
        assert (e.order_id, e.from_state, e.to_state, e.ts, e.reason, e.detail) == (o.order_id, src, dst, T1, "R", "D")
        assert e.event_id.startswith("ev_")
    else:
        with pytest.raises(InvalidTransition) as ei:
            transition(o, dst, T1)
        assert o.state is src and o.updated_at == T0
        assert str(src) in str(ei.value) and str(dst) in str(ei.value)


def test_transition_keeps_reason_when_none_given():
    o = order(state=S.SUBMITTED)
    o.reason = "old"
    transition(o, S.PENDING_CANCEL, T1)
    assert o.reason == "old"


def test_event_ids_unique():
    o = order(state=S.SUBMITTED)
    e1 = transition(o, S.PENDING_CANCEL, T1)
    e2 = transition(o, S.SUBMITTED, T1, reason="CANCEL_REFUSED")
    assert e1.event_id != e2.event_id


def test_created_event():
    e = created_event(order(state=S.HELD), T0, reason="STOP_NOT_TRIGGERED")
    assert e.from_state is None and e.to_state is S.HELD


def test_can_cancel():
    assert {s for s in OrderState if can_cancel(order(state=s))} == set(CANCELLABLE_STATES)
    assert can_transition(S.SUBMITTED, S.PENDING_CANCEL)


# -- apply_fill -------------------------------------------------------------------------------


def test_partial_then_full_fill_vwap():
    o = order(state=S.SUBMITTED)
    [e1] = apply_fill(o, 40, 10_000.0, T1)
    assert (o.state, o.filled_qty, o.avg_fill_price) == (S.PARTIALLY_FILLED, 40, 10_000.0)
    assert (e1.from_state, e1.to_state, e1.reason) == (S.SUBMITTED, S.PARTIALLY_FILLED, "FILL")
    [e2] = apply_fill(o, 20, 10_100.0, T1)
    assert (e2.from_state, e2.to_state) == (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED)
    [e3] = apply_fill(o, 40, 10_050.0, T1, execution_id="X9")
    assert o.state is S.FILLED and o.filled_qty == 100 and o.leaves_qty == 0
    assert o.avg_fill_price == pytest.approx((40 * 10_000 + 20 * 10_100 + 40 * 10_050) / 100)
    assert e3.to_state is S.FILLED and "X9" in e3.detail


def test_fill_straight_from_pending_submit():
    o = order(state=S.PENDING_SUBMIT)
    apply_fill(o, 100, 10_000.0, T1)
    assert o.state is S.FILLED


def test_overfill_raises_and_leaves_order_unchanged():
    o = order(state=S.PARTIALLY_FILLED, filled=90, avg=10_000.0)
    with pytest.raises(OverfillError, match="filled 101 > order qty 100"):
        apply_fill(o, 11, 10_000.0, T1)
    assert (o.state, o.filled_qty, o.avg_fill_price, o.updated_at) == (S.PARTIALLY_FILLED, 90, 10_000.0, T0)


@pytest.mark.parametrize("qty,price", [(0, 10_000.0), (-5, 10_000.0), (10, 0.0), (10, -1.0)])
def test_bad_fill_values(qty, price):
    with pytest.raises(ValueError):
        apply_fill(order(state=S.SUBMITTED), qty, price, T1)


def test_fill_after_cancel_ack_is_applied_state_stays_terminal():
    o = order(state=S.SUBMITTED)
    apply_fill(o, 30, 10_000.0, T1)
    transition(o, S.PENDING_CANCEL, T1)
    transition(o, S.CANCELLED, T1, reason="USER_CANCEL")
    [e] = apply_fill(o, 20, 10_000.0, T1)  # the execution crossed the cancel-ack
    assert o.state is S.CANCELLED and o.filled_qty == 50
    assert (e.from_state, e.to_state, e.reason) == (S.CANCELLED, S.CANCELLED, "LATE_FILL")
    assert o.leaves_qty == 0


def test_late_fill_completing_a_cancelled_order_becomes_filled():
    o = order(state=S.CANCELLED, filled=60, avg=10_000.0)
    [e] = apply_fill(o, 40, 10_100.0, T1)
    assert o.state is S.FILLED and o.filled_qty == 100
    assert (e.from_state, e.to_state, e.reason) == (S.CANCELLED, S.FILLED, "LATE_FILL")


@pytest.mark.parametrize("terminal", [S.EXPIRED, S.REJECTED])
def test_late_fill_on_other_terminals(terminal):
    o = order(state=terminal)
    apply_fill(o, 10, 10_000.0, T1)
    assert o.state is terminal and o.filled_qty == 10
    apply_fill(o, 90, 10_000.0, T1)
    assert o.state is S.FILLED


def test_partial_fill_while_cancel_pending_keeps_pending_cancel():
    o = order(state=S.PENDING_CANCEL, filled=10, avg=10_000.0)
    [e] = apply_fill(o, 10, 10_000.0, T1)
    assert o.state is S.PENDING_CANCEL and o.filled_qty == 20
    assert e.from_state is e.to_state is S.PENDING_CANCEL
    apply_fill(o, 80, 10_000.0, T1)
    assert o.state is S.FILLED


@pytest.mark.parametrize("state", [S.HELD, S.FILLED])
def test_fill_on_held_or_filled_raises(state):
    o = order(state=state, filled=100 if state is S.FILLED else 0)
    with pytest.raises((InvalidTransition, OverfillError)):
        apply_fill(o, 1, 10_000.0, T1)
    o2 = order(state=state, qty=200, filled=100 if state is S.FILLED else 0)
    with pytest.raises(InvalidTransition):
        apply_fill(o2, 1, 10_000.0, T1)


# -- apply_broker_snapshot --------------------------------------------------------------------


def test_snapshot_new_acknowledges_and_records_broker_id():
    o = order(state=S.PENDING_SUBMIT)
    [e] = apply_broker_snapshot(o, broker(OrderStatus.NEW), T1)
    assert o.state is S.SUBMITTED and o.broker_order_id == "B-77"
    assert (e.from_state, e.to_state) == (S.PENDING_SUBMIT, S.SUBMITTED)
    assert apply_broker_snapshot(o, broker(OrderStatus.NEW), T1) == []  # idempotent


def test_snapshot_never_moves_quantities():
    o = order(state=S.SUBMITTED)
    apply_broker_snapshot(o, broker(OrderStatus.PARTIALLY_FILLED, filled=40), T1)
    assert o.filled_qty == 0 and o.avg_fill_price == 0.0
    assert o.state is S.SUBMITTED  # fills not applied yet


def test_snapshot_filled_before_fills_arrive_is_not_filled():
    o = order(state=S.PENDING_SUBMIT)
    apply_broker_snapshot(o, broker(OrderStatus.FILLED, filled=100), T1)
    assert o.state is S.SUBMITTED and o.filled_qty == 0
    apply_fill(o, 60, 10_000.0, T1)
    apply_broker_snapshot(o, broker(OrderStatus.FILLED, filled=100), T1)
    assert o.state is S.PARTIALLY_FILLED
    apply_fill(o, 40, 10_000.0, T1)
    assert o.state is S.FILLED
    assert apply_broker_snapshot(o, broker(OrderStatus.FILLED, filled=100), T1) == []


def test_snapshot_partial_from_pending_submit_with_applied_fill():
    o = order(state=S.PENDING_SUBMIT)
    o.filled_qty = 10  # a push fill arrived before the ack (state was not moved by hand)
    [e] = apply_broker_snapshot(o, broker(OrderStatus.PARTIALLY_FILLED, filled=10), T1)
    assert e.to_state is S.PARTIALLY_FILLED


@pytest.mark.parametrize("start", [S.PENDING_SUBMIT, S.SUBMITTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL])
def test_snapshot_cancelled(start):
    o = order(state=start)
    [e] = apply_broker_snapshot(o, broker(OrderStatus.CANCELLED, reason="USER"), T1)
    assert o.state is S.CANCELLED and o.reason == "USER" and e.to_state is S.CANCELLED


@pytest.mark.parametrize("start", [S.PENDING_SUBMIT, S.SUBMITTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL])
def test_snapshot_expired(start):
    o = order(state=start)
    apply_broker_snapshot(o, broker(OrderStatus.EXPIRED), T1)
    assert o.state is S.EXPIRED and o.reason == "EXPIRED"


@pytest.mark.parametrize("start", [S.PENDING_SUBMIT, S.SUBMITTED])
def test_snapshot_rejected(start):
    o = order(state=start)
    apply_broker_snapshot(o, broker(OrderStatus.REJECTED, reason="INSUFFICIENT_FUNDS"), T1)
    assert o.state is S.REJECTED and o.reason == "INSUFFICIENT_FUNDS"


@pytest.mark.parametrize("start", [S.PARTIALLY_FILLED, S.PENDING_CANCEL])
def test_snapshot_rejected_where_not_allowed_maps_to_cancelled(start):
    o = order(state=start, filled=10, avg=10_000.0)
    apply_broker_snapshot(o, broker(OrderStatus.REJECTED), T1)
    assert o.state is S.CANCELLED and o.reason == "REJECTED_AFTER_FILL"


@pytest.mark.parametrize("status", [OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED])
def test_snapshot_working_while_cancel_pending_changes_nothing(status):
    o = order(state=S.PENDING_CANCEL)
    assert apply_broker_snapshot(o, broker(status), T1) == []
    assert o.state is S.PENDING_CANCEL


@pytest.mark.parametrize("terminal", [S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED])
@pytest.mark.parametrize("status", list(OrderStatus))
def test_snapshot_never_changes_terminal_state(terminal, status):
    o = order(state=terminal)
    assert apply_broker_snapshot(o, broker(status), T1) == []
    assert o.state is terminal
    assert o.broker_order_id == "B-77"


def test_snapshot_on_held_order():
    o = order(state=S.HELD)
    events = apply_broker_snapshot(o, broker(OrderStatus.NEW), T1)
    assert [e.to_state for e in events] == [S.PENDING_SUBMIT, S.SUBMITTED]
    o = order(state=S.HELD)
    apply_broker_snapshot(o, broker(OrderStatus.CANCELLED), T1)
    assert o.state is S.CANCELLED
