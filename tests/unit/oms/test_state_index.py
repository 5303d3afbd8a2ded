"""The working-order index and working-buy totals stay equal to a full scan of the orders."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from oms.core.state import OmsState
from oms.core.types import OrderRecord, OrderState, OrderType

NOW = datetime(2026, 2, 27, 1, 0, tzinfo=UTC)
STATES = list(OrderState)


def _scan(state: OmsState) -> tuple[dict[str, float], dict[str, float], set[str]]:
    by_sym: dict[str, float] = {}
    by_sid: dict[str, float] = {}
    for o in state.orders.values():
        if not o.state.is_terminal and o.side == "BUY":
            v = o.leaves_qty * (o.limit_price or 0.0)
            by_sym[o.symbol] = by_sym.get(o.symbol, 0.0) + v
            by_sid[o.strategy_id] = by_sid.get(o.strategy_id, 0.0) + v
    return by_sym, by_sid, {o.order_id for o in state.orders.values() if not o.state.is_terminal}


def test_index_matches_a_full_scan_through_random_changes() -> None:
    rng = random.Random(5)
    state = OmsState(instance_id="t")
    orders: list[OrderRecord] = []
    for step in range(3000):
        if not orders or rng.random() < 0.3:
            o = OrderRecord(
                order_id=f"o{step}",
                intent_id="i",
                strategy_id=rng.choice("AB"),
                symbol=rng.choice("XYZ"),
                side=rng.choice(["BUY", "SELL"]),
                qty=rng.randint(1, 9),
                order_type=OrderType.LIMIT,
                state=OrderState.SUBMITTED,
                created_at=NOW,
                updated_at=NOW,
                limit_price=float(rng.randint(1, 99)),
            )
            orders.append(o)
        else:
            o = rng.choice(orders)
            o.state = rng.choice(STATES)
            o.filled_qty = rng.randint(0, o.qty)
        state.track(o)
        by_sym, by_sid, working = _scan(state)
        assert set(state.working) == working
        for sym in "XYZ":
            assert abs(state.working_buy_by_symbol.get(sym, 0.0) - by_sym.get(sym, 0.0)) < 1e-6
        for sid in "AB":
            assert abs(state.working_buy_by_strategy.get(sid, 0.0) - by_sid.get(sid, 0.0)) < 1e-6
            for sym in "XYZ":
                expected = {o.order_id for o in state.working.values() if o.strategy_id == sid and o.symbol == sym}
                assert {o.order_id for o in state.working_orders(sid, sym)} == expected
