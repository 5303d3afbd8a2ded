from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.models import BrokerOrder, OrderStatus, OrderType, Side
from oms.core.reconcile import (
    AdaptiveInterval,
    DriftConfirmer,
    DriftKind,
    PositionDrift,
    diff_positions,
    drift_records,
    orders_to_sync,
)
from oms.core.types import OrderRecord, OrderState

NOW = datetime(2026, 2, 27, 10, 0, tzinfo=KST)


def test_diff_positions_kinds_and_order():
    drifts = diff_positions({"B": 10, "A": 5, "C": 7, "Z": 0}, {"A": 5, "B": 12, "D": 3, "Y": 0})
    assert drifts == [
        PositionDrift("B", 10, 12, DriftKind.DEFICIT),
        PositionDrift("C", 7, 0, DriftKind.EXCESS),
        PositionDrift("D", 0, 3, DriftKind.DEFICIT),
    ]
    assert drifts[0].diff == -2 and drifts[0].qty == 2
    assert drifts[1].diff == 7


def test_diff_positions_equal_books():
    assert diff_positions({"A": 1}, {"A": 1}) == []
    assert diff_positions({}, {}) == []


def test_drift_records():
    rows = drift_records(diff_positions({"A": 3}, {"B": 2}), NOW, detail="cycle 7")
    assert [(r.kind, r.symbol, r.broker_qty, r.ledger_qty) for r in rows] == [
        ("POSITION_EXCESS", "A", 3, 0),
        ("POSITION_DEFICIT", "B", 0, 2),
    ]
    assert rows[0].recon_id != rows[1].recon_id and rows[0].ts == NOW and rows[0].detail == "cycle 7"


def test_drift_confirmer_needs_consecutive_identical_sightings():
    c = DriftConfirmer(2)
    d1 = diff_positions({"A": 10}, {"A": 5})
    assert c.update(d1) == []
    assert c.update(d1) == d1
    assert c.update(d1) == d1
    # The quantities changed (e.g. a fill landed): start over.
    d2 = diff_positions({"A": 12}, {"A": 5})
    assert c.update(d2) == []
    # A drift that disappears for one cycle starts over too.
    assert c.update([]) == []
    assert c.update(d2) == []
    c.forget("A")
    assert c.update(d2) == []
    assert DriftConfirmer(1).update(d1) == d1
    with pytest.raises(ValueError):
        DriftConfirmer(0)


def test_adaptive_interval():
    iv = AdaptiveInterval(min_s=5, max_s=60)
    assert iv.current == 5
    assert [iv.next_interval(False, False) for _ in range(5)] == [10, 20, 40, 60, 60]
    assert iv.next_interval(False, True) == 30
    assert iv.next_interval(False, True) == 15
    assert iv.next_interval(True, False) == 5
    assert iv.next_interval(False, True) == 5
    assert iv.next_interval(True, True) == 5
    iv.current = 60
    iv.reset()
    assert iv.current == 5


def test_adaptive_interval_bounds():
    iv = AdaptiveInterval(min_s=5, max_s=60, initial_s=1000)
    assert iv.current == 60
    for args in [dict(min_s=0), dict(min_s=10, max_s=5), dict(shrink=0), dict(grow=0.5)]:
        with pytest.raises(ValueError):
            AdaptiveInterval(**args)


def order(oid, state, cancel_after=None) -> OrderRecord:
    return OrderRecord(
        order_id=oid,
        intent_id="i",
        strategy_id="KMP",
        symbol="005930",
        side="BUY",
        qty=10,
        order_type=OrderType.LIMIT,
        state=state,
        created_at=NOW,
        updated_at=NOW,
        limit_price=10_000.0,
        cancel_after_ts=cancel_after,
    )


def bo(cid) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=cid,
        broker_order_id="B" + cid,
        symbol="005930",
        side=Side.BUY,
        qty=10,
        order_type=OrderType.LIMIT,
        limit_price=10_000.0,
        status=OrderStatus.NEW,
        created_at=NOW,
        updated_at=NOW,
    )


def test_orders_to_sync():
    past, future = NOW - timedelta(seconds=1), NOW + timedelta(seconds=60)
    oms = [
        order("pending", OrderState.PENDING_SUBMIT, cancel_after=past),  # in flight, not at broker
        order("working", OrderState.SUBMITTED),  # listed by broker
        order("gone", OrderState.PARTIALLY_FILLED),  # not listed: filled/cancelled?
        order("late", OrderState.SUBMITTED, cancel_after=NOW),  # listed and timed out
        order("fresh", OrderState.SUBMITTED, cancel_after=future),
        order("cancelling", OrderState.PENDING_CANCEL, cancel_after=past),
        order("held", OrderState.HELD, cancel_after=past),
        order("heldok", OrderState.HELD),
        order("done", OrderState.FILLED),
    ]
    brokers = [bo("working"), bo("late"), bo("fresh"), bo("cancelling"), bo("stranger"), bo("done")]
    plan = orders_to_sync(oms, brokers, NOW)
    assert [(o.order_id, b.client_order_id) for o, b in plan.snapshots] == [
        ("working", "working"),
        ("late", "late"),
        ("fresh", "fresh"),
        ("cancelling", "cancelling"),
    ]
    assert [o.order_id for o in plan.lookup] == ["pending", "gone"]
    assert [o.order_id for o in plan.timed_out] == ["late", "held"]
    assert sorted(b.client_order_id for b in plan.unknown_at_broker) == ["done", "stranger"]


def test_orders_to_sync_accepts_mapping():
    plan = orders_to_sync([order("a", OrderState.SUBMITTED)], {"a": bo("a")}, NOW)
    assert len(plan.snapshots) == 1 and plan.lookup == [] and plan.unknown_at_broker == []
