"""Request and response bodies of the v1 API (the contract in ARCHITECTURE.md)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oms.core.types import (
    Constraints, IntentRecord, IntentResult, IntentType, PlannedOrderType, RiskPayload, TimeHorizon, Urgency,
)

SYMBOL_PATTERN = r"^(\*|[A-Za-z0-9.\-]{1,16})$"


class ConstraintsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_type: PlannedOrderType | None = None
    limit_price: float | None = Field(None, gt=0)
    stop_price: float | None = Field(None, gt=0)
    max_slippage_bps: float | None = Field(None, ge=0)
    max_spread_bps: float | None = Field(None, ge=0)
    cancel_after_sec: float | None = Field(None, gt=0)
    expiry_ts: datetime | None = None

    @field_validator("expiry_ts")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a UTC offset")
        return v

    @model_validator(mode="after")
    def _prices(self) -> ConstraintsIn:
        if self.order_type in (PlannedOrderType.LIMIT,) and self.limit_price is None:
            raise ValueError("limit_price is required for a LIMIT order")
        if self.order_type is PlannedOrderType.STOP_LIMIT and (self.stop_price is None or self.limit_price is None):
            raise ValueError("stop_price and limit_price are required for a STOP_LIMIT order")
        return self

    def to_domain(self) -> Constraints:
        return Constraints(**self.model_dump())


class RiskPayloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry_px: float | None = Field(None, gt=0)
    stop_px: float | None = Field(None, gt=0)
    hard_stop_px: float | None = Field(None, gt=0)
    rationale_code: str | None = Field(None, max_length=64)
    confidence: str | None = Field(None, max_length=16)

    def to_domain(self) -> RiskPayload:
        return RiskPayload(**self.model_dump())


class IntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent_type: IntentType
    strategy_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    desired_qty: int | None = Field(None, ge=0)
    target_qty: int | None = Field(None, ge=0)
    urgency: Urgency = Urgency.NORMAL
    time_horizon: TimeHorizon = TimeHorizon.INTRADAY
    constraints: ConstraintsIn = Field(default_factory=ConstraintsIn)
    risk_payload: RiskPayloadIn = Field(default_factory=RiskPayloadIn)
    signal_hash: str | None = Field(None, max_length=128)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("strategy_id")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @model_validator(mode="after")
    def _qty(self) -> IntentIn:
        if self.intent_type in (IntentType.ENTER, IntentType.REDUCE) and not self.desired_qty:
            raise ValueError(f"desired_qty (> 0) is required for {self.intent_type.value}")
        if self.intent_type is IntentType.SET_TARGET and self.target_qty is None:
            raise ValueError("target_qty is required for SET_TARGET")
        if self.symbol == "*" and self.intent_type not in (IntentType.FLATTEN, IntentType.CANCEL_ORDERS,
                                                          IntentType.MODIFY_RISK):
            raise ValueError("symbol '*' is only allowed for FLATTEN, CANCEL_ORDERS and MODIFY_RISK")
        return self


class IntentOut(BaseModel):
    intent_id: str
    status: str
    message: str
    modified_qty: int | None = None
    order_id: str | None = None
    cooldown_until: datetime | None = None
    reason_code: str | None = None

    @classmethod
    def of(cls, r: IntentResult) -> IntentOut:
        return cls(intent_id=r.intent_id, status=r.status.value, message=r.message, modified_qty=r.modified_qty,
                   order_id=r.order_id, cooldown_until=r.cooldown_until, reason_code=r.reason_code)


def intent_record_out(rec: IntentRecord) -> dict[str, Any]:
    i, r = rec.intent, rec.result
    return {
        "intent_id": i.intent_id, "strategy_id": i.strategy_id, "symbol": i.symbol,
        "intent_type": i.intent_type.value, "desired_qty": i.desired_qty, "target_qty": i.target_qty,
        "urgency": i.urgency.value, "time_horizon": i.time_horizon.value, "idempotency_key": i.idempotency_key,
        "signal_hash": i.signal_hash, "received_at": i.received_at.isoformat(),
        "constraints": {k: (v.isoformat() if isinstance(v, datetime) else v)
                        for k, v in _dc(i.constraints).items()},
        "risk_payload": _dc(i.risk_payload),
        "status": r.status.value, "message": r.message, "reason_code": r.reason_code,
        "modified_qty": r.modified_qty, "order_id": r.order_id,
        "cooldown_until": r.cooldown_until.isoformat() if r.cooldown_until else None,
        "decided_at": rec.decided_at.isoformat(),
    }


def _dc(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


class SafeModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class RegimeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regime: str = Field(min_length=1, max_length=32)


class ViCooldownIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=r"^[A-Za-z0-9.\-]{1,16}$")
    seconds: float | None = Field(None, gt=0, le=86_400)


class CorrectAllocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=r"^[A-Za-z0-9.\-]{1,16}$")
    from_strategy: str = Field(min_length=1, max_length=32)
    to_strategy: str | None = Field(None, min_length=1, max_length=32)
    qty: int = Field(gt=0)
    unfreeze: bool = True
    note: str | None = Field(None, max_length=500)


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: dict[str, Any] = Field(default_factory=dict)
