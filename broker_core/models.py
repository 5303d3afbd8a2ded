"""Broker-neutral domain models shared by adapters, the OMS and strategies.

Prices are floats in the instrument's currency (KRW prices are whole numbers on the tick
grid); quantities are whole shares. Timestamps are timezone-aware datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from broker_core.contract.enums import OrderType

__all__ = [
    "Account",
    "Bar",
    "BrokerOrder",
    "Fill",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Position",
    "Quote",
    "Side",
    "Tick",
    "TimeInForce",
]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class TimeInForce(StrEnum):
    DAY = "DAY"


class OrderStatus(StrEnum):
    """Order status as the broker reports it (the OMS keeps its own richer state machine)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = OrderType.LIMIT
    limit_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    band_bps: float | None = None
    """For MARKETABLE_LIMIT: how far through the reference price the limit is set (default per venue)."""

    def __post_init__(self) -> None:
        if not OrderType(self.order_type).sent_to_brokers:
            raise ValueError(f"{self.order_type} is held by the OMS and never sent to a broker")


@dataclass(slots=True)
class BrokerOrder:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: float | None
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    filled_qty: int = 0
    avg_fill_price: float = 0.0
    reason: str | None = None
    """Reject/cancel/expiry reason code, when there is one."""

    @property
    def leaves_qty(self) -> int:
        return 0 if self.status.is_terminal else self.qty - self.filled_qty

    def copy(self) -> BrokerOrder:
        return replace(self)


@dataclass(frozen=True, slots=True)
class Fill:
    execution_id: str
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    ts: datetime
    commission: float = 0.0
    tax: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One change of a broker order; carries the fill when the change is an execution."""

    order: BrokerOrder
    ts: datetime
    fill: Fill | None = None


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: int
    avg_price: float


@dataclass(frozen=True, slots=True)
class Account:
    currency: str
    cash: float
    buyable_cash: float
    equity: float
    market_value: float = 0.0
    realized_pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade print on the tape."""

    symbol: str
    ts: datetime
    price: float
    qty: int
    aggressor: Side | None = None
    vi: bool | None = None
    """The symbol's volatility interruption state with this print, when the feed reports it: True while a
    VI (static or dynamic) holds the symbol in its single-price auction, False in continuous trading, None
    when the feed does not say. A consumer sees a VI start/end as the change from one print to the next."""


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    ts: datetime
    last: float
    bid: float | None = None
    ask: float | None = None
    bid_size: int = 0
    ask_size: int = 0
    prev_close: float | None = None
    upper_limit: float | None = None
    lower_limit: float | None = None
    volume: int = 0
    halted: bool = False
    vi_ref_price: float | None = None


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts: datetime
    """Bar start."""
    open: float
    high: float
    low: float
    close: float
    volume: int
    interval: str = "1m"
    extra: dict[str, float] = field(default_factory=dict, compare=False)
