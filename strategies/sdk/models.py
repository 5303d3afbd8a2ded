"""Wire shapes of the OMS v1 API as the SDK uses them: the contract's models from
``broker_core.contract`` (one definition, shared with the OMS), under the SDK's names."""

from __future__ import annotations

from broker_core.contract.enums import (
    TERMINAL_ORDER_STATES,
    IntentStatus,
    IntentType,
    OrderType,
    TimeHorizon,
    Urgency,
)
from broker_core.contract.wire import (
    Account,
    Allocation,
    Constraints,
    Fill,
    IntentReply,
    MarketClock,
    Order,
    Position,
    RiskPayload,
    body_of,
)

__all__ = [
    "TERMINAL_ORDER_STATES",
    "Account",
    "Allocation",
    "Constraints",
    "Fill",
    "IntentReply",
    "IntentStatus",
    "IntentType",
    "MarketClock",
    "Order",
    "OrderType",
    "Position",
    "RiskPayload",
    "TimeHorizon",
    "Urgency",
    "body_of",
]
