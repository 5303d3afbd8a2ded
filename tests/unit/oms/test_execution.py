"""Execution: orders at the broker — submit, cancel, updates and fills, held stops, breaker accounting.

Real collaborators throughout (see ``_harness.py``); the broker is replaced only by paper-broker
subclasses that lose a reply, refuse a call or time out, as real brokers do.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from broker_core.contract.reasons import ReasonCode
from broker_core.errors import AuthError, BrokerUnavailable, OutcomeUnknown, RateLimited
from broker_core.models import OrderRequest, OrderStatus, OrderType, Side, Tick
from oms.core.circuit import BreakerState
from oms.core.types import OrderState
from tests.unit.oms._harness import (
    NOW,
    SYM,
    LostReplyBroker,
    LostRequestBroker,
    Oms,
    RefusingBroker,
    oms,
    settle,
)


def states(h: Oms, order_id: str) -> list[tuple[str | None, str]]:
    """(from, to) of every journaled event of one order."""
    return [
        (e.from_state.value if e.from_state else None, e.to_state.value)
        for e in h.journaled("order_events")
        if e.order_id == order_id
    ]


# -- submit ------------------------------------------------------------------------------------------


async def test_accepted_submit_makes_the_order_submitted_with_its_broker_id(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        sub = h.bus.subscribe("KMP")
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        assert order.state is OrderState.SUBMITTED
        at_broker = h.exchange.engine.get_order(order.order_id)
        assert at_broker is not None and order.broker_order_id == at_broker.broker_order_id
        assert h.state.broker_ids[at_broker.broker_order_id] == order.order_id
        assert ("PENDING_SUBMIT", "SUBMITTED") in states(h, order.order_id)
        assert h.journaled("orders")[-1].state is OrderState.SUBMITTED
        event = await asyncio.wait_for(sub.get(), 1)
        assert (event["type"], event["order_id"], event["state"]) == ("order", order.order_id, "SUBMITTED")


async def test_rejected_submit_is_final_with_the_brokers_reason(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(limit=20_000)  # far above today's upper price limit
        await h.execution.submit(order)
        assert order.state is OrderState.REJECTED
        assert order.reason == "OUTSIDE_PRICE_LIMIT"
        assert order.order_id not in h.state.working
        assert h.journaled("orders")[-1].state is OrderState.REJECTED
        assert h.breaker.failures == 0  # the broker answered: a rejection is not a broker failure


async def test_outcome_unknown_keeps_the_order_in_flight_and_never_resends_it(tmp_path: Path) -> None:
    async with oms(tmp_path, LostReplyBroker) as h:
        broker = h.broker_as(LostReplyBroker)
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        assert order.state is OrderState.PENDING_SUBMIT and order.reason == ReasonCode.OUTCOME_UNKNOWN
        assert h.journaled("orders")[-1].reason == ReasonCode.OUTCOME_UNKNOWN
        assert order.order_id in h.state.working
        assert h.breaker.failures == 1
        await h.execution.resolve(order)  # reconciliation looks it up by client order id
        assert order.state is OrderState.SUBMITTED and order.broker_order_id
        await h.execution.resolve(order)
        assert broker.submits == 1
        assert [o.client_order_id for o in h.exchange.engine.orders()] == [order.order_id]
        assert h.breaker.failures == 1  # lookups are reads: they do not wipe the failed submit from the count


async def test_outcome_unknown_of_an_order_the_broker_never_got_resolves_to_rejected(tmp_path: Path) -> None:
    async with oms(tmp_path, LostRequestBroker) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        assert order.state is OrderState.PENDING_SUBMIT
        await h.execution.resolve(order)
        assert order.state is OrderState.REJECTED and order.reason == ReasonCode.NOT_AT_BROKER
        assert h.exchange.engine.orders() == []
        assert h.broker_as(LostRequestBroker).submits == 1


async def test_a_failed_lookup_leaves_an_in_flight_order_in_flight(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        broker = h.broker_as(RefusingBroker)
        broker.submit_errors.append(OutcomeUnknown("timeout", client_order_id="?"))
        broker.lookup_errors.append(BrokerUnavailable("502"))
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        await h.execution.resolve(order)
        assert order.state is OrderState.PENDING_SUBMIT  # not declared absent on a failed lookup
        assert h.breaker.failures == 2
        assert broker.submits == 1


async def test_refusals_before_send_reject_with_a_temporary_reason(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        broker = h.broker_as(RefusingBroker)
        broker.submit_errors += [RateLimited("429", retry_after=1.0), BrokerUnavailable("503")]
        limited, unavailable = h.new_order(limit=9_900), h.new_order(limit=9_900)
        await h.execution.submit(limited)
        await h.execution.submit(unavailable)
        assert (limited.state, limited.reason) == (OrderState.REJECTED, ReasonCode.BROKER_RATE_LIMITED)
        assert (unavailable.state, unavailable.reason) == (OrderState.REJECTED, ReasonCode.BROKER_UNAVAILABLE)
        assert h.exchange.engine.orders() == [] and not h.state.working


async def test_breaker_counts_consecutive_failures_and_a_success_resets_them(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker, breaker_failures=3) as h:
        broker = h.broker_as(RefusingBroker)
        broker.submit_errors += [BrokerUnavailable("503"), BrokerUnavailable("503")]
        for _ in range(2):
            await h.execution.submit(h.new_order(limit=9_900))
        assert h.breaker.failures == 2 and h.breaker.state is BreakerState.CLOSED
        await h.execution.submit(h.new_order(limit=9_900))  # accepted
        assert h.breaker.failures == 0
        broker.submit_errors += [BrokerUnavailable("503")] * 3
        for _ in range(3):
            await h.execution.submit(h.new_order(limit=9_900))
        assert h.breaker.state is BreakerState.OPEN


async def test_an_auth_failure_opens_the_breaker_at_once(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        h.broker_as(RefusingBroker).submit_errors.append(AuthError("token expired"))
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        assert (order.state, order.reason) == (OrderState.REJECTED, ReasonCode.BROKER_AUTH)
        assert h.breaker.state is BreakerState.OPEN


# -- fills -------------------------------------------------------------------------------------------


async def test_a_fill_seen_twice_is_applied_once_to_order_ledger_and_journal(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(qty=10, limit=10_000)
        await h.execution.submit(order)
        updates = h.trade(10_000, qty=20)  # participation 25%: 5 of the 10 shares
        (fill,) = [u.fill for u in updates if u.fill is not None]
        h.push(updates)
        h.push(updates)  # the push stream repeats itself after a reconnect
        assert h.execution.apply_fill(fill) is False  # and the polling safety net sees it too
        assert order.filled_qty == 5 and order.state is OrderState.PARTIALLY_FILLED
        assert h.held(SYM, "KMP") == 5 and h.real_qty(SYM) == 5
        assert [f.execution_id for f in h.journaled("fills")] == [fill.execution_id]
        assert h.state.daily_strategy["KMP"].fills == 1
        assert h.metrics.registry.get_sample_value("oms_duplicate_fills_total") == 2


async def test_a_fill_after_the_cancel_ack_is_applied_as_a_late_fill(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(qty=10, limit=10_000)
        await h.execution.submit(order)
        delayed = h.trade(10_000, qty=20)  # 5 shares trade; the execution notice is late
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        assert order.state is OrderState.CANCELLED and order.filled_qty == 0  # the ack crossed the fill
        h.push(delayed)
        assert order.state is OrderState.CANCELLED and order.filled_qty == 5
        assert h.held(SYM, "KMP") == 5
        late = [e for e in h.journaled("order_events") if e.order_id == order.order_id and e.reason == "LATE_FILL"]
        assert len(late) == 1 and len(h.journaled("fills")) == 1


async def test_a_fill_for_an_order_the_oms_does_not_know_is_left_to_reconciliation(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(qty=10, limit=10_000)
        await h.execution.submit(order)
        (fill,) = [u.fill for u in h.trade(10_000) if u.fill is not None]
        stranger = replace(fill, client_order_id="not-ours", execution_id="X-other")
        assert h.execution.apply_fill(stranger) is False
        assert h.journaled("fills") == [] and h.held(SYM, "KMP") == 0
        assert h.execution.apply_fill(fill) is True  # our own is applied, nothing blocked it


async def test_a_fill_the_order_state_machine_refuses_is_still_booked(tmp_path: Path) -> None:
    """Execution.apply_fill promises to keep a fill the order FSM refuses ("overfill or a fill on a held
    order: keep the fill, flag it"). Here the broker works an order the OMS still has HELD (the case
    ``apply_broker_snapshot`` handles: HELD → PENDING_SUBMIT on a broker snapshot), and its execution
    notice arrives before any snapshot."""
    async with oms(tmp_path) as h:
        order = h.new_order(qty=4, limit=10_200, stop=10_100, state=OrderState.HELD, order_type=OrderType.STOP_LIMIT)
        h.exchange.submit(OrderRequest(order.order_id, SYM, Side.BUY, 4, OrderType.LIMIT, 10_200))
        (fill,) = [u.fill for u in h.trade(10_150, qty=100) if u.fill is not None]
        h.execution.apply_fill(fill)
        assert h.held(SYM, "KMP") == 4
        assert [f.execution_id for f in h.journaled("fills")] == [fill.execution_id]


# -- cancel ------------------------------------------------------------------------------------------


async def test_cancel_of_a_held_order_is_local_and_never_reaches_the_broker(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        order = h.new_order(limit=10_200, stop=10_100, state=OrderState.HELD, order_type=OrderType.STOP_LIMIT)
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        assert order.state is OrderState.CANCELLED and order.order_id not in h.state.working
        assert h.broker_as(RefusingBroker).cancels == 0 and h.exchange.engine.orders() == []
        assert ("HELD", "CANCELLED") in states(h, order.order_id)


async def test_cancel_of_a_working_order_goes_through_pending_cancel_to_cancelled(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        assert order.state is OrderState.CANCELLED and order.reason == ReasonCode.CANCEL_REQUESTED
        assert h.at_broker(order.order_id).status is OrderStatus.CANCELLED
        events = states(h, order.order_id)
        assert events.index(("SUBMITTED", "PENDING_CANCEL")) < events.index(("PENDING_CANCEL", "CANCELLED"))


async def test_cancel_of_a_terminal_order_changes_and_sends_nothing(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        order = h.new_order(qty=4, limit=10_000)
        await h.execution.submit(order)
        h.push(h.trade(10_000, qty=100))
        assert order.state is OrderState.FILLED
        seq = h.journal.last_seq()
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        assert order.state is OrderState.FILLED
        assert h.broker_as(RefusingBroker).cancels == 0 and h.journal.last_seq() == seq


async def test_cancel_crossing_a_complete_fill_ends_filled(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(qty=4, limit=10_000)
        await h.execution.submit(order)
        delayed = h.trade(10_000, qty=100)  # fully filled at the exchange, the notice not yet read
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)  # refused: already final
        assert order.state is OrderState.PENDING_CANCEL and h.breaker.failures == 0
        h.push(delayed)
        assert order.state is OrderState.FILLED and h.held(SYM, "KMP") == 4


async def test_cancel_asked_in_flight_is_sent_once_the_broker_knows_the_order(tmp_path: Path) -> None:
    async with oms(tmp_path, LostReplyBroker) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        assert order.state is OrderState.PENDING_SUBMIT  # nothing to cancel by yet
        assert h.at_broker(order.order_id).status is OrderStatus.NEW
        await h.execution.resolve(order)
        await h.execution.resolve(order)  # a second lookup does not ask again
        await h.execution.drain_tasks()
        assert order.state is OrderState.CANCELLED and order.reason == ReasonCode.CANCEL_REQUESTED
        assert h.at_broker(order.order_id).status is OrderStatus.CANCELLED
        assert [e for e in states(h, order.order_id) if e[1] == "PENDING_CANCEL"] == [("SUBMITTED", "PENDING_CANCEL")]


async def test_cancel_asked_in_flight_of_an_order_the_broker_never_got_sends_nothing(tmp_path: Path) -> None:
    async with oms(tmp_path, LostRequestBroker) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        await h.execution.resolve(order)
        await h.execution.drain_tasks()
        assert order.state is OrderState.REJECTED and order.reason == ReasonCode.NOT_AT_BROKER
        assert h.exchange.engine.orders() == [] and order.order_id not in h.state.working
        assert not [e for e in states(h, order.order_id) if e[1] == "PENDING_CANCEL"]


async def test_a_failed_cancel_counts_on_the_breaker_and_keeps_the_order_pending_cancel(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        broker = h.broker_as(RefusingBroker)
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        broker.cancel_errors.append(OutcomeUnknown("timeout", client_order_id=order.order_id))
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        assert order.state is OrderState.PENDING_CANCEL and h.breaker.failures == 1


async def test_a_cancel_the_broker_did_not_take_is_sent_again_when_asked_again(tmp_path: Path) -> None:
    """A cancel refused before it was sent (503) must not leave the order working at the broker for good:
    the next cancel request (a strategy's CANCEL_ORDERS, eod-cleanup, a timeout) has to reach the broker."""
    async with oms(tmp_path, RefusingBroker) as h:
        broker = h.broker_as(RefusingBroker)
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        broker.cancel_errors.append(BrokerUnavailable("503 before send"))
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        await h.execution.cancel(order, ReasonCode.EOD_CLEANUP)
        assert broker.cancels == 2, "the second cancel request was swallowed: the order stays live at the broker"
        assert h.at_broker(order.order_id).status is OrderStatus.CANCELLED
        assert order.state is OrderState.CANCELLED


# -- updates and held stops -----------------------------------------------------------------------------


async def test_run_updates_applies_what_the_broker_pushes(tmp_path: Path) -> None:
    later = [Tick(SYM, NOW.replace(second=5), 10_000, 400)]
    async with oms(tmp_path, ticks=later) as h:
        order = h.new_order(qty=10, limit=10_000)
        reader = asyncio.create_task(h.execution.run_updates())
        await asyncio.sleep(0)  # subscribed before the order is sent
        await h.execution.submit(order)
        await h.exchange.run()  # the print fills the order and the exchange pushes it
        await settle(lambda: order.state is OrderState.FILLED)
        assert h.held(SYM, "KMP") == 10 and len(h.journaled("fills")) == 1
        await h.broker.close()
        await asyncio.wait_for(reader, 1)  # the loop ends with the broker's stream


async def test_a_held_stop_is_sent_once_when_its_trigger_trades(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        order = h.new_order(limit=10_200, stop=10_100, state=OrderState.HELD, order_type=OrderType.STOP_LIMIT)
        await h.execution.watch(SYM)
        h.execution.on_tick(Tick(SYM, NOW, 10_050, 5))
        await h.execution.drain_tasks()
        assert order.state is OrderState.HELD
        h.execution.on_tick(Tick(SYM, NOW, 10_150, 5))
        h.execution.on_tick(Tick(SYM, NOW, 10_200, 5))  # a second print before the first submit settled
        await h.execution.drain_tasks()
        assert order.state is OrderState.SUBMITTED and order.reason == ReasonCode.STOP_TRIGGERED
        assert h.broker_as(RefusingBroker).submits == 1 and len(h.exchange.engine.orders()) == 1


async def test_a_held_stop_cancelled_before_its_trigger_is_never_sent(tmp_path: Path) -> None:
    async with oms(tmp_path, RefusingBroker) as h:
        order = h.new_order(limit=10_200, stop=10_100, state=OrderState.HELD, order_type=OrderType.STOP_LIMIT)
        await h.execution.watch(SYM)
        await h.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        h.execution.on_tick(Tick(SYM, NOW, 10_150, 5))
        await h.execution.drain_tasks()
        assert order.state is OrderState.CANCELLED and h.broker_as(RefusingBroker).submits == 0
