"""Domain models and the broker error taxonomy."""

from __future__ import annotations

from datetime import datetime

import pytest

from broker_core.clock import KST
from broker_core.errors import (
    AuthError,
    BrokerError,
    BrokerUnavailable,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    SubscriptionCapacityExceeded,
)
from broker_core.models import BrokerOrder, OrderStatus, OrderType, Side

TS = datetime(2026, 2, 27, 9, 0, tzinfo=KST)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (OrderStatus.NEW, False),
        (OrderStatus.PARTIALLY_FILLED, False),
        (OrderStatus.FILLED, True),
        (OrderStatus.CANCELLED, True),
        (OrderStatus.REJECTED, True),
        (OrderStatus.EXPIRED, True),
    ],
)
def test_order_status_is_terminal(status: OrderStatus, terminal: bool) -> None:
    assert status.is_terminal is terminal


def test_every_status_is_classified() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }


def _order(status: OrderStatus, qty: int = 10, filled: int = 0) -> BrokerOrder:
    return BrokerOrder(
        client_order_id="c1",
        broker_order_id="0000000001",
        symbol="005930",
        side=Side.BUY,
        qty=qty,
        order_type=OrderType.LIMIT,
        limit_price=70_000,
        status=status,
        created_at=TS,
        updated_at=TS,
        filled_qty=filled,
    )


@pytest.mark.parametrize(
    ("status", "qty", "filled", "leaves"),
    [
        (OrderStatus.NEW, 10, 0, 10),
        (OrderStatus.PARTIALLY_FILLED, 10, 4, 6),
        (OrderStatus.FILLED, 10, 10, 0),
        (OrderStatus.CANCELLED, 10, 4, 0),  # cancelled remainder leaves nothing open
        (OrderStatus.REJECTED, 10, 0, 0),
        (OrderStatus.EXPIRED, 10, 3, 0),
    ],
)
def test_leaves_qty(status: OrderStatus, qty: int, filled: int, leaves: int) -> None:
    assert _order(status, qty, filled).leaves_qty == leaves


def test_broker_order_copy_is_independent() -> None:
    o = _order(OrderStatus.NEW)
    c = o.copy()
    assert c == o and c is not o
    c.filled_qty = 5
    c.status = OrderStatus.PARTIALLY_FILLED
    assert o.filled_qty == 0 and o.status is OrderStatus.NEW


def test_side_sign_and_string_values() -> None:
    assert Side.BUY.sign == 1 and Side.SELL.sign == -1
    assert Side("BUY") is Side.BUY
    assert str(OrderStatus.FILLED) == "FILLED"
    assert OrderType("MARKETABLE_LIMIT") is OrderType.MARKETABLE_LIMIT


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (BrokerError, "BROKER_ERROR"),
        (OrderRejected, "REJECTED"),
        (BrokerUnavailable, "UNAVAILABLE"),
        (AuthError, "AUTH"),
        (OrderNotFound, "NOT_FOUND"),
        (SubscriptionCapacityExceeded, "SUBSCRIPTION_CAPACITY"),
    ],
)
def test_error_codes_and_message(cls: type[BrokerError], code: str) -> None:
    err = cls("boom")
    assert isinstance(err, BrokerError) and isinstance(err, Exception)
    assert err.code == code
    assert err.message == "boom"
    assert str(err) == "boom"
    # a specific venue code can override the class default without touching the class
    custom = cls("boom", code="APBK0919")
    assert custom.code == "APBK0919"
    assert cls.code == code
    # no message -> the class name
    assert cls().message == cls.__name__


def test_rate_limited_retry_after() -> None:
    assert RateLimited("slow down").retry_after == 1.0
    err = RateLimited("slow down", retry_after=2.5, code="EGW00201")
    assert err.retry_after == 2.5
    assert err.code == "EGW00201"
    assert err.message == "slow down"
    assert RateLimited().code == "RATE_LIMITED"


def test_outcome_unknown_carries_client_order_id() -> None:
    err = OutcomeUnknown("submit timed out", client_order_id="strat-1-0001")
    assert err.client_order_id == "strat-1-0001"
    assert err.code == "OUTCOME_UNKNOWN"
    assert err.message == "submit timed out"
    with pytest.raises(TypeError):
        OutcomeUnknown("no id")  # type: ignore[call-arg]


def test_taxonomy_can_be_caught_as_broker_error() -> None:
    for exc in (
        OrderRejected("x"),
        RateLimited("x"),
        BrokerUnavailable("x"),
        AuthError("x"),
        OutcomeUnknown("x", client_order_id="c"),
    ):
        with pytest.raises(BrokerError):
            raise exc
