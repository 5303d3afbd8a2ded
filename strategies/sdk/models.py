"""Wire shapes of the OMS v1 API as the SDK sees them (ARCHITECTURE.md, "OMS HTTP API").

The SDK does not import the OMS: strategies are separate processes that only share the HTTP
contract. Request models forbid unknown fields (a typo fails here, not as a 422 later); reply
models allow extra fields so an OMS that adds fields does not break older strategies.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class IntentType(StrEnum):
    ENTER = "ENTER"
    REDUCE = "REDUCE"
    EXIT = "EXIT"
    FLATTEN = "FLATTEN"
    CANCEL_ORDERS = "CANCEL_ORDERS"
    MODIFY_RISK = "MODIFY_RISK"
    SET_TARGET = "SET_TARGET"


class IntentStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    EXECUTED = "EXECUTED"
    MODIFIED = "MODIFIED"
    REJECTED = "REJECTED"
    DEFERRED = "DEFERRED"
    CANCELLED = "CANCELLED"


class Urgency(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"


class TimeHorizon(StrEnum):
    INTRADAY = "INTRADAY"
    SWING = "SWING"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKETABLE_LIMIT = "MARKETABLE_LIMIT"
    STOP_LIMIT = "STOP_LIMIT"
    MARKET = "MARKET"


TERMINAL_ORDER_STATES = frozenset({"FILLED", "CANCELLED", "REJECTED", "EXPIRED"})


class RiskPayload(BaseModel):
    """``risk_payload`` of an intent (strategies.md C3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    entry_px: float | None = Field(default=None, gt=0)
    stop_px: float | None = Field(default=None, gt=0)
    hard_stop_px: float | None = Field(default=None, gt=0)
    rationale_code: str | None = Field(default=None, max_length=64)
    confidence: str | None = Field(default=None, max_length=16)


class Constraints(BaseModel):
    """``constraints`` of an intent; None fields are left to the OMS's order planner."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    order_type: OrderType | None = None
    limit_price: float | None = Field(default=None, gt=0)
    stop_price: float | None = Field(default=None, gt=0)
    max_slippage_bps: float | None = Field(default=None, ge=0)
    max_spread_bps: float | None = Field(default=None, ge=0)
    cancel_after_sec: float | None = Field(default=None, gt=0)
    expiry_ts: datetime | None = None


class IntentReply(BaseModel):
    """The OMS's decision on one intent (strategies.md C4)."""

    model_config = ConfigDict(extra="allow")
    intent_id: str
    status: IntentStatus
    message: str = ""
    modified_qty: int | None = None
    order_id: str | None = None
    cooldown_until: datetime | None = None
    reason_code: str | None = None
    idempotency_key: str | None = None
    """The key the SDK sent (filled in by the client, not by the OMS)."""

    @property
    def ok(self) -> bool:
        """The OMS took the intent (ACCEPTED, EXECUTED or MODIFIED)."""
        return self.status in (IntentStatus.ACCEPTED, IntentStatus.EXECUTED, IntentStatus.MODIFIED)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class Allocation(_Reply):
    """One strategy's virtual holding in one symbol."""

    qty: int
    cost_basis: float = 0.0
    entry_ts: datetime | None = None
    soft_stop_px: float | None = None
    hard_stop_px: float | None = None
    time_stop_ts: datetime | None = None
    entry_px: float | None = None
    initial_stop_px: float | None = None


class Position(_Reply):
    symbol: str
    real_qty: int
    avg_price: float = 0.0
    allocations: dict[str, Allocation] = Field(default_factory=dict)
    frozen: bool = False
    working_order_count: int = 0
    entry_lock_owner: str | None = None
    entry_lock_until: datetime | None = None


class Order(_Reply):
    order_id: str
    intent_id: str | None = None
    strategy_id: str
    symbol: str
    side: str
    qty: int
    state: str
    filled_qty: int = 0
    avg_fill_price: float = 0.0
    limit_price: float | None = None
    stop_price: float | None = None
    order_type: str | None = None
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cancel_after_ts: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL_ORDER_STATES


class Fill(_Reply):
    execution_id: str
    order_id: str
    strategy_id: str
    symbol: str
    side: str
    qty: int
    price: float
    ts: datetime
    commission: float = 0.0
    tax: float = 0.0


class Account(_Reply):
    equity: float
    buyable_cash: float
    daily_pnl: float = 0.0
    daily_pnl_pct: float = 0.0
    safe_mode: bool = False
    halt_new_entries: bool = False
    flatten_in_progress: bool = False
    regime: str | None = None


class MarketClock(_Reply):
    now: datetime
    session_phase: str
    trading_day: bool = True
    next_open: datetime | None = None
    next_close: datetime | None = None
    speed: float | None = None


def body_of(model: BaseModel | None) -> dict[str, Any]:
    """JSON body of a request model without its None fields (the OMS applies its defaults)."""
    return {} if model is None else model.model_dump(mode="json", exclude_none=True)
