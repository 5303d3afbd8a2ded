"""The OMS order state machine.

States (``OrderState``) and the allowed moves (:data:`TRANSITIONS`)::

    HELD             → PENDING_SUBMIT, CANCELLED
    PENDING_SUBMIT   → SUBMITTED, PARTIALLY_FILLED, FILLED, REJECTED, CANCELLED, EXPIRED
    SUBMITTED        → PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELLED, EXPIRED, REJECTED
    PARTIALLY_FILLED → PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELLED, EXPIRED
    PENDING_CANCEL   → CANCELLED, FILLED, PARTIALLY_FILLED, EXPIRED, SUBMITTED (cancel refused)
    CANCELLED        → FILLED   (late fill completing the order)
    EXPIRED          → FILLED   (late fill completing the order)
    REJECTED         → FILLED   (late fill completing the order; should never happen)
    FILLED           → (none)

Real-world rules, decided here:

- **Fills are facts.** A fill that arrives after the OMS saw CANCELLED/EXPIRED/REJECTED (the
  cancel-ack and the execution crossed) is applied: ``filled_qty`` and the average price
  move, an event with reason ``LATE_FILL`` is recorded, and the state stays terminal unless
  the order is now fully filled, in which case it becomes FILLED.
- A partial fill while a cancel is pending keeps PENDING_CANCEL (the cancel is still in
  flight); the event records the fill with ``from_state == to_state``.
- Fill events are the only events whose from/to state may be equal without that self-move
  being in :data:`TRANSITIONS`; :func:`transition` itself is strict.
- :func:`apply_broker_snapshot` never moves quantities: the OMS state follows the fills that
  have been *applied*. A broker FILLED/PARTIALLY_FILLED status with fewer applied fills maps to
  PARTIALLY_FILLED (some fills applied) or SUBMITTED (none yet); FILLED is reached by
  :func:`apply_fill` when the last share is applied.
- A fill on a HELD order (never sent) is a bug and raises :class:`InvalidTransition`.
"""

from __future__ import annotations

from datetime import datetime

from broker_core.contract.reasons import ReasonCode
from broker_core.models import BrokerOrder, OrderStatus
from oms.core.ids import new_id
from oms.core.types import OrderEventRecord, OrderRecord, OrderState

S = OrderState

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.HELD: frozenset({S.PENDING_SUBMIT, S.CANCELLED}),
    S.PENDING_SUBMIT: frozenset({S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.SUBMITTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELLED, S.FILLED, S.PARTIALLY_FILLED, S.EXPIRED, S.SUBMITTED}),
    S.CANCELLED: frozenset({S.FILLED}),
    S.EXPIRED: frozenset({S.FILLED}),
    S.REJECTED: frozenset({S.FILLED}),
    S.FILLED: frozenset(),
}

LATE_FILL_STATES = frozenset({S.CANCELLED, S.EXPIRED, S.REJECTED})
"""Terminal states that still accept (late) fills."""

CANCELLABLE_STATES = frozenset({S.HELD, S.SUBMITTED, S.PARTIALLY_FILLED})
"""States from which the OMS may ask for a cancel (HELD cancels locally, no broker call)."""


class InvalidTransition(Exception):
    def __init__(self, order_id: str, from_state: OrderState, to_state: OrderState, why: str = "") -> None:
        self.order_id, self.from_state, self.to_state = order_id, from_state, to_state
        msg = f"order {order_id}: {from_state} → {to_state} is not allowed"
        super().__init__(f"{msg} ({why})" if why else msg)


class OverfillError(ValueError):
    """A fill would take filled_qty above the order quantity."""


def can_transition(from_state: OrderState, to_state: OrderState) -> bool:
    return to_state in TRANSITIONS[from_state]


def can_cancel(order: OrderRecord) -> bool:
    return order.state in CANCELLABLE_STATES


def _event(
    order: OrderRecord,
    from_state: OrderState | None,
    to_state: OrderState,
    now: datetime,
    reason: str | None,
    detail: str | None,
) -> OrderEventRecord:
    return OrderEventRecord(
        event_id=new_id("ev"),
        order_id=order.order_id,
        ts=now,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        detail=detail,
    )


def created_event(
    order: OrderRecord, now: datetime, reason: str | None = None, detail: str | None = None
) -> OrderEventRecord:
    """The first event of an order (``from_state`` None → its initial state)."""
    return _event(order, None, order.state, now, reason, detail)


def transition(
    order: OrderRecord, to: OrderState, now: datetime, reason: str | None = None, detail: str | None = None
) -> OrderEventRecord:
    """Move ``order`` to ``to`` (mutates state, updated_at and — when given — reason)."""
    to = OrderState(to)
    if not can_transition(order.state, to):
        raise InvalidTransition(order.order_id, order.state, to)
    from_state = order.state
    order.state = to
    order.updated_at = now
    if reason is not None:
        order.reason = reason
    return _event(order, from_state, to, now, reason, detail)


def _working_target(order: OrderRecord) -> OrderState:
    """The working state that matches the fills applied so far."""
    return S.PARTIALLY_FILLED if order.filled_qty > 0 else S.SUBMITTED


def apply_broker_snapshot(order: OrderRecord, broker: BrokerOrder, now: datetime) -> list[OrderEventRecord]:
    """Fold a broker snapshot of this order into the OMS state; returns the events (maybe none).

    Records ``broker_order_id``. Never changes ``filled_qty``/``avg_fill_price``. Mapping:

    - NEW / PARTIALLY_FILLED / FILLED (with fewer applied fills) → SUBMITTED or PARTIALLY_FILLED
      following the applied fills, from PENDING_SUBMIT/SUBMITTED/PARTIALLY_FILLED only; while a
      cancel is pending (PENDING_CANCEL) a working status changes nothing (the cancel is still
      in flight; a refused cancel is applied explicitly with ``transition(.., SUBMITTED)``).
    - FILLED with all fills applied: already FILLED by :func:`apply_fill` (nothing to do).
    - CANCELLED / EXPIRED → that state from any non-terminal state; a HELD order goes to
      CANCELLED (it was never at the broker).
    - REJECTED → REJECTED from PENDING_SUBMIT/SUBMITTED; from a state with fills or a pending
      cancel (where REJECTED is not allowed) → CANCELLED with reason ``REJECTED_AFTER_FILL``.
    - A terminal OMS state is never changed by a snapshot (late fills go through apply_fill).
    """
    if broker.broker_order_id and order.broker_order_id != broker.broker_order_id:
        order.broker_order_id = broker.broker_order_id
        order.updated_at = now
    state = order.state
    if state.is_terminal:
        return []
    status = broker.status
    detail = f"broker {status} filled={broker.filled_qty}/{broker.qty}"
    events: list[OrderEventRecord] = []

    if status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
        if order.filled_qty >= order.qty:
            return []  # apply_fill has already moved it to FILLED (or will on the next fill)
        if state is S.HELD:
            events.append(transition(order, S.PENDING_SUBMIT, now, ReasonCode.BROKER_SNAPSHOT, detail))
            state = order.state
        if state in (S.PENDING_SUBMIT, S.SUBMITTED, S.PARTIALLY_FILLED):
            target = _working_target(order)
            if target != state and can_transition(state, target):
                events.append(transition(order, target, now, None, detail))
        return events

    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        target = S.CANCELLED if state is S.HELD else OrderState(status.value)
        reason = order.reason if state is S.PENDING_CANCEL and order.reason else (broker.reason or status.value)
        events.append(transition(order, target, now, reason, detail))
        return events

    if status is OrderStatus.REJECTED:
        if can_transition(state, S.REJECTED):
            events.append(transition(order, S.REJECTED, now, broker.reason or "REJECTED", detail))
        else:
            events.append(transition(order, S.CANCELLED, now, ReasonCode.REJECTED_AFTER_FILL, detail))
        return events
    raise ValueError(f"unknown broker status {status!r}")


def apply_fill(
    order: OrderRecord, qty: int, price: float, now: datetime, execution_id: str | None = None
) -> list[OrderEventRecord]:
    """Apply one execution: filled_qty, VWAP average price and state. Returns one event.

    - Working states go to PARTIALLY_FILLED, or FILLED on the last share.
    - PENDING_CANCEL stays PENDING_CANCEL on a partial fill (FILLED on the last share).
    - CANCELLED/EXPIRED/REJECTED accept the fill (reason ``LATE_FILL``) and stay terminal unless
      it completes the order (→ FILLED).
    - Raises :class:`OverfillError` if filled_qty would exceed qty, :class:`ValueError` for a
      non-positive qty/price, :class:`InvalidTransition` for a fill on a HELD or FILLED order.
      The order is unchanged when it raises.
    """
    if not isinstance(qty, int) or qty < 1:
        raise ValueError(f"order {order.order_id}: fill qty must be a positive int, got {qty!r}")
    if not price > 0:
        raise ValueError(f"order {order.order_id}: fill price must be > 0, got {price!r}")
    new_filled = order.filled_qty + qty
    if new_filled > order.qty:
        raise OverfillError(
            f"order {order.order_id}: fill of {qty} would make filled {new_filled} > "
            f"order qty {order.qty} (already filled {order.filled_qty})"
        )
    state = order.state
    complete = new_filled == order.qty
    if state is S.HELD or state is S.FILLED:
        raise InvalidTransition(
            order.order_id,
            state,
            S.FILLED if complete else S.PARTIALLY_FILLED,
            "fill on an order that is " + ("not sent" if state is S.HELD else "complete"),
        )
    if complete:
        target = S.FILLED
    elif state in (S.PENDING_SUBMIT, S.SUBMITTED, S.PARTIALLY_FILLED):
        target = S.PARTIALLY_FILLED
    else:  # PENDING_CANCEL or a late fill on a terminal state
        target = state
    reason = ReasonCode.LATE_FILL if state in LATE_FILL_STATES else ReasonCode.FILL
    detail = f"{qty}@{price:g} filled {new_filled}/{order.qty}"
    if execution_id:
        detail += f" exec={execution_id}"

    order.avg_fill_price = (order.avg_fill_price * order.filled_qty + price * qty) / new_filled
    order.filled_qty = new_filled
    order.state = target
    order.updated_at = now
    return [_event(order, state, target, now, reason, detail)]
