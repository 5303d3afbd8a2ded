"""Every enum of the OMS contract: intents, their decisions, planned order types and OMS order states."""

from __future__ import annotations

from enum import StrEnum


class IntentType(StrEnum):
    ENTER = "ENTER"
    REDUCE = "REDUCE"
    EXIT = "EXIT"
    FLATTEN = "FLATTEN"
    CANCEL_ORDERS = "CANCEL_ORDERS"
    MODIFY_RISK = "MODIFY_RISK"
    SET_TARGET = "SET_TARGET"

    @property
    def reduces_exposure(self) -> bool:
        return self in (IntentType.REDUCE, IntentType.EXIT, IntentType.FLATTEN, IntentType.CANCEL_ORDERS)

    @property
    def priority(self) -> int:
        """Lower runs first: exits, then reductions, then everything else, then entries."""
        return {IntentType.FLATTEN: 0, IntentType.EXIT: 0, IntentType.REDUCE: 1, IntentType.CANCEL_ORDERS: 1}.get(
            self, 2 if self is not IntentType.ENTER else 3
        )


class Urgency(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"


class TimeHorizon(StrEnum):
    INTRADAY = "INTRADAY"
    SWING = "SWING"


class IntentStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    EXECUTED = "EXECUTED"
    MODIFIED = "MODIFIED"
    REJECTED = "REJECTED"
    DEFERRED = "DEFERRED"
    CANCELLED = "CANCELLED"

    @property
    def taken(self) -> bool:
        """The OMS took the intent (ACCEPTED, EXECUTED or MODIFIED)."""
        return self in (IntentStatus.ACCEPTED, IntentStatus.EXECUTED, IntentStatus.MODIFIED)


class OrderType(StrEnum):
    """The order type an intent asks for (``constraints.order_type``) and a broker order is sent as.

    A broker receives MARKET, LIMIT or MARKETABLE_LIMIT; a STOP_LIMIT entry is held by the OMS until its
    trigger trades and then sent as a LIMIT (brokers take no stop orders from us)."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    MARKETABLE_LIMIT = "MARKETABLE_LIMIT"
    """A limit priced through the last price (buy up, sell down)."""
    STOP_LIMIT = "STOP_LIMIT"

    @property
    def sent_to_brokers(self) -> bool:
        return self is not OrderType.STOP_LIMIT


class OrderState(StrEnum):
    """The OMS's order state machine (the broker's own status is ``broker_core.models.OrderStatus``)."""

    HELD = "HELD"
    """Stop-limit entry kept by the OMS until its trigger trades."""
    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_ORDER_STATES

    @property
    def in_flight(self) -> bool:
        return self in IN_FLIGHT_ORDER_STATES


TERMINAL_ORDER_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED})
IN_FLIGHT_ORDER_STATES = frozenset({OrderState.PENDING_SUBMIT, OrderState.PENDING_CANCEL})


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    """Safe mode: only exposure-reducing intents."""
    HALTED = "HALTED"
