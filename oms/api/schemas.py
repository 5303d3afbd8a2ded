"""Request and response bodies of the v1 API (the contract in ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from broker_core.contract.wire import IntentReply
from oms.core.types import IntentRecord, IntentResult

SYMBOL_ONLY = r"^[A-Za-z0-9.\-]{1,16}$"


def reply_of(r: IntentResult) -> IntentReply:
    return IntentReply(
        intent_id=r.intent_id,
        status=r.status,
        message=r.message,
        modified_qty=r.modified_qty,
        order_id=r.order_id,
        cooldown_until=r.cooldown_until,
        reason_code=r.reason_code,
    )


def intent_record_out(rec: IntentRecord) -> dict[str, Any]:
    i, r = rec.intent, rec.result
    return {
        "intent_id": i.intent_id,
        "strategy_id": i.strategy_id,
        "symbol": i.symbol,
        "intent_type": i.intent_type.value,
        "desired_qty": i.desired_qty,
        "target_qty": i.target_qty,
        "urgency": i.urgency.value,
        "time_horizon": i.time_horizon.value,
        "idempotency_key": i.idempotency_key,
        "signal_hash": i.signal_hash,
        "received_at": i.received_at.isoformat(),
        "constraints": i.constraints.model_dump(mode="json"),
        "risk_payload": i.risk_payload.model_dump(mode="json"),
        "status": r.status.value,
        "message": r.message,
        "reason_code": r.reason_code,
        "modified_qty": r.modified_qty,
        "order_id": r.order_id,
        "cooldown_until": r.cooldown_until.isoformat() if r.cooldown_until else None,
        "decided_at": rec.decided_at.isoformat(),
    }


class SafeModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class RegimeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regime: str = Field(min_length=1, max_length=32)


class ViCooldownIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=SYMBOL_ONLY)
    seconds: float | None = Field(None, gt=0, le=86_400)


class CorrectAllocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=SYMBOL_ONLY)
    from_strategy: str = Field(min_length=1, max_length=32)
    to_strategy: str | None = Field(None, min_length=1, max_length=32)
    qty: int = Field(gt=0)
    unfreeze: bool = True
    note: str | None = Field(None, max_length=500)


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: dict[str, Any] = Field(default_factory=dict)
