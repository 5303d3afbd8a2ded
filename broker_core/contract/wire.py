"""Wire models of the OMS API v1 (ARCHITECTURE.md, "OMS HTTP API"): what the SDK sends and the OMS
validates, and the replies and stream events the OMS sends back.

Request models forbid unknown fields (a typo is a 422 naming the field); reply models allow extra
fields so an OMS that adds fields does not break an older strategy.
Request values are bounded (``bounds``): strict integers within int64, finite numbers, strings free of
control characters, timestamps aware and within 2000..2099 — nothing the journal takes can stop its drain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from broker_core.contract.bounds import Bps, CancelAfterSec, Price, Quantity, Text, Timestamp
from broker_core.contract.enums import (
    TERMINAL_ORDER_STATES,
    IntentStatus,
    IntentType,
    OrderType,
    TimeHorizon,
    Urgency,
)

SYMBOL_PATTERN = r"^(\*|[A-Za-z0-9.\-]{1,16})$"
"""A ticker, or ``*`` (every symbol) for FLATTEN, CANCEL_ORDERS and MODIFY_RISK."""
STRATEGY_ID_PATTERN = r"^[A-Za-z0-9_\-]+$"


def _when(field: str, values: list[str], then: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema ``if``/``then``: when ``field`` is one of ``values``, ``then`` applies."""
    return {"if": {"required": [field], "properties": {field: {"enum": values}}}, "then": then}


_CONSTRAINT_RULES: dict[str, Any] = {
    "allOf": [  # the cross-field rules of Constraints._prices, so the published schema states them
        _when(
            "order_type", ["LIMIT"], {"required": ["limit_price"], "properties": {"limit_price": {"type": "number"}}}
        ),
        _when(
            "order_type",
            ["STOP_LIMIT"],
            {
                "required": ["limit_price", "stop_price"],
                "properties": {"limit_price": {"type": "number"}, "stop_price": {"type": "number"}},
            },
        ),
    ]
}


class Constraints(BaseModel):
    """``constraints`` of an intent; None fields are left to the OMS's order planner."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_CONSTRAINT_RULES)
    order_type: OrderType | None = None
    limit_price: Price | None = None
    stop_price: Price | None = None
    max_slippage_bps: Bps | None = None
    max_spread_bps: Bps | None = None
    cancel_after_sec: CancelAfterSec | None = None
    expiry_ts: Timestamp | None = None
    """Timezone-aware, within 2000..2099 (``bounds.Timestamp``)."""

    @model_validator(mode="after")
    def _prices(self) -> Constraints:
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("limit_price is required for a LIMIT order")
        if self.order_type is OrderType.STOP_LIMIT and (self.stop_price is None or self.limit_price is None):
            raise ValueError("stop_price and limit_price are required for a STOP_LIMIT order")
        return self


class RiskPayload(BaseModel):
    """``risk_payload`` of an intent (strategies.md C3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    entry_px: Price | None = None
    stop_px: Price | None = None
    hard_stop_px: Price | None = None
    rationale_code: Text | None = Field(default=None, max_length=64)
    confidence: Text | None = Field(default=None, max_length=16)


_ALL_SYMBOL_TYPES = [IntentType.FLATTEN.value, IntentType.CANCEL_ORDERS.value, IntentType.MODIFY_RISK.value]
_INTENT_RULES: dict[str, Any] = {
    "allOf": [  # the cross-field rules of IntentRequest._qty, so the published schema states them
        _when(
            "intent_type",
            [IntentType.ENTER.value, IntentType.REDUCE.value],
            {"required": ["desired_qty"], "properties": {"desired_qty": {"type": "integer", "minimum": 1}}},
        ),
        _when(
            "intent_type",
            [IntentType.SET_TARGET.value],
            {"required": ["target_qty"], "properties": {"target_qty": {"type": "integer"}}},
        ),
        _when("symbol", ["*"], {"properties": {"intent_type": {"enum": _ALL_SYMBOL_TYPES}}}),
    ]
}


class IntentRequest(BaseModel):
    """Body of ``POST /api/v1/intents``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_INTENT_RULES)
    intent_type: IntentType
    strategy_id: str = Field(min_length=1, max_length=32, pattern=STRATEGY_ID_PATTERN)
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    desired_qty: Quantity | None = None
    target_qty: Quantity | None = None
    urgency: Urgency = Urgency.NORMAL
    time_horizon: TimeHorizon = TimeHorizon.INTRADAY
    constraints: Constraints = Field(default_factory=Constraints)
    risk_payload: RiskPayload = Field(default_factory=RiskPayload)
    signal_hash: Text | None = Field(None, max_length=128)
    idempotency_key: Text | None = Field(None, min_length=1, max_length=200)

    @field_validator("strategy_id")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @model_validator(mode="after")
    def _qty(self) -> IntentRequest:
        if self.intent_type in (IntentType.ENTER, IntentType.REDUCE) and not self.desired_qty:
            raise ValueError(f"desired_qty (> 0) is required for {self.intent_type.value}")
        if self.intent_type is IntentType.SET_TARGET and self.target_qty is None:
            raise ValueError("target_qty is required for SET_TARGET")
        if self.symbol == "*" and self.intent_type not in (
            IntentType.FLATTEN,
            IntentType.CANCEL_ORDERS,
            IntentType.MODIFY_RISK,
        ):
            raise ValueError("symbol '*' is only allowed for FLATTEN, CANCEL_ORDERS and MODIFY_RISK")
        return self


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class IntentReply(_Reply):
    """The OMS's decision on one intent (strategies.md C4)."""

    intent_id: str
    status: IntentStatus
    message: str = ""
    modified_qty: int | None = None
    order_id: str | None = None
    cooldown_until: datetime | None = None
    reason_code: str | None = None
    idempotency_key: str | None = None
    """The key the intent was decided under (the SDK fills it in when the OMS does not)."""

    @property
    def ok(self) -> bool:
        """The OMS took the intent (ACCEPTED, EXECUTED or MODIFIED)."""
        return self.status.taken


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
    freeze_reason: str | None = None
    working_order_count: int = 0
    entry_lock_owner: str | None = None
    entry_lock_until: datetime | None = None
    last_price: float | None = None


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
    market: str = "krx"
    """The account's market: ``krx`` (times in KST) or ``us`` (times in America/New_York)."""
    currency: str = "KRW"


# ---- stream events (WS /api/v1/stream) ------------------------------------------------------------
class TradeEvent(_Reply):
    type: Literal["trade"]
    symbol: str
    price: float
    qty: int
    ts: datetime
    side: str | None = None


class OrderEvent(Order):
    """An order changed: the REST order shape plus ``type`` and ``ts``."""

    type: Literal["order"]
    ts: datetime


class FillEvent(Fill):
    type: Literal["fill"]


class ViEvent(_Reply):
    """A volatility interruption started (``active``) or ended on a symbol."""

    type: Literal["vi"]
    symbol: str
    active: bool
    ts: datetime


class SubscribedEvent(_Reply):
    type: Literal["subscribed"]
    granted: list[str]
    denied: dict[str, str] = Field(default_factory=dict)


class EvictedEvent(_Reply):
    type: Literal["evicted"]
    symbols: list[str]
    reason: str


class GapEvent(_Reply):
    type: Literal["gap"]
    symbols: list[str]
    since: datetime
    until: datetime | None = None
    reason: str


STREAM_EVENTS: dict[str, type[_Reply]] = {
    "trade": TradeEvent,
    "order": OrderEvent,
    "fill": FillEvent,
    "vi": ViEvent,
    "subscribed": SubscribedEvent,
    "evicted": EvictedEvent,
    "gap": GapEvent,
}


def parse_event(message: dict[str, Any]) -> _Reply | None:
    """The typed model of a stream message, or None for a type this contract does not define."""
    model = STREAM_EVENTS.get(str(message.get("type")))
    return model.model_validate(message) if model is not None else None


def body_of(model: BaseModel | None) -> dict[str, Any]:
    """JSON body of a request model without its None fields (the OMS applies its defaults)."""
    return {} if model is None else model.model_dump(mode="json", exclude_none=True)
