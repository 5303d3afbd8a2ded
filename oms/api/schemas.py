"""Request and response bodies of the v1 API (the contract in ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from broker_core.contract.bounds import BoundedJson, Quantity, Text, numbers_only
from broker_core.contract.wire import STRATEGY_ID_PATTERN, IntentReply
from oms.core.types import IntentRecord, IntentResult

SYMBOL_ONLY = r"^[A-Za-z0-9.\-]{1,16}$"
StrategyIdPath = Annotated[str, Path(min_length=1, max_length=32, pattern=STRATEGY_ID_PATTERN)]
"""A ``{strategy_id}`` path segment: bounded, no control characters (it is journaled)."""
SymbolPath = Annotated[str, Path(pattern=SYMBOL_ONLY)]
"""A ``{symbol}`` path segment of an admin action (journaled)."""


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
    enabled: StrictBool


class RegimeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regime: Text = Field(min_length=1, max_length=32)


class ViCooldownIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=SYMBOL_ONLY)
    seconds: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False), numbers_only] | None = None


class CorrectAllocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=SYMBOL_ONLY)
    from_strategy: str = Field(min_length=1, max_length=32, pattern=STRATEGY_ID_PATTERN)
    to_strategy: str | None = Field(None, min_length=1, max_length=32, pattern=STRATEGY_ID_PATTERN)
    qty: Quantity = Field(gt=0)
    unfreeze: StrictBool = True
    note: Text | None = Field(None, max_length=500)


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: BoundedJson = Field(default_factory=dict)
    """Free-form, bounded (``bounds.json_problem``: ≤ 16 KB as JSON, ≤ 8 levels, clean strings, finite numbers)."""
