"""What the PCIM engine hands back: Decisions (log lines with a reason code) and Actions (intents).

Every engine call returns an :class:`Output`; ``actions`` are sent in list order and map one-to-one
to OMS intents (strategies.md C2/C3), all with ``time_horizon`` SWING:

================  ==============================================================================
EnterAction       ENTER, LIMIT buy (a marketable limit per C6, or a plain limit for T3 Bucket B),
                  ``cancel_after_sec``; risk payload entry/stop, confidence HIGH/MEDIUM
ExitAction        EXIT of the whole allocation, marketable limit sell at ``limit_price`` (C6)
ReduceAction      REDUCE ``qty`` (profit take 60%, small-fill abort), marketable limit sell
CancelAction      CANCEL_ORDERS of PCIM's working orders in the symbol (10:00 cut, A's 30 s)
ModifyRiskAction  MODIFY_RISK: the allocation's stop and day-15 time stop, or (symbol ``*``) the
                  regime and its gross-exposure cap as strategy risk state
================  ==============================================================================

Idempotency keys are deterministic (C3): :func:`strategies.sdk.keys.decision_key` over strategy,
symbol, action and the decision time's 60 s bucket, plus a tag naming the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker_core.contract.reasons import ReasonCode
from strategies.sdk.keys import decision_key


@dataclass(frozen=True, slots=True)
class Decision:
    """One loggable decision: reason code, symbol (None = strategy-wide), when, and its inputs."""

    code: ReasonCode
    symbol: str | None
    ts: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    alert: bool = False


def idem_key(strategy_id: str, symbol: str, action: str, ts: datetime, tag: str | None = None) -> str:
    return decision_key(strategy_id, symbol, action, ts, bucket_sec=60, tag=tag)


@dataclass(frozen=True, slots=True)
class EnterAction:
    symbol: str
    qty: int
    limit_price: float
    cancel_after_sec: float
    stop_px: float
    confidence: str
    bucket: str
    tier: str
    idempotency_key: str
    ts: datetime
    rationale_code: str = ReasonCode.PCIM_ENTRY.value
    order_type: str = "LIMIT"
    urgency: str = "NORMAL"
    time_horizon: str = "SWING"

    def risk_payload(self) -> dict[str, Any]:
        return {
            "entry_px": self.limit_price,
            "stop_px": self.stop_px,
            "hard_stop_px": None,
            "rationale_code": self.rationale_code,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class ExitAction:
    symbol: str
    reason: ReasonCode
    limit_price: float | None
    idempotency_key: str
    ts: datetime
    order_type: str = "LIMIT"
    urgency: str = "HIGH"
    time_horizon: str = "SWING"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class ReduceAction:
    symbol: str
    qty: int
    reason: ReasonCode
    limit_price: float | None
    idempotency_key: str
    ts: datetime
    order_type: str = "LIMIT"
    urgency: str = "NORMAL"
    time_horizon: str = "SWING"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class CancelAction:
    symbol: str
    reason: ReasonCode
    idempotency_key: str
    ts: datetime

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class ModifyRiskAction:
    symbol: str
    stop_px: float | None
    time_stop_ts: datetime | None
    idempotency_key: str
    ts: datetime
    rationale_code: str
    confidence: str | None = None
    signal_hash: str | None = None
    time_horizon: str = "SWING"


Action = EnterAction | ExitAction | ReduceAction | CancelAction | ModifyRiskAction


def intent_type(a: Action) -> str:
    if isinstance(a, EnterAction):
        return "ENTER"
    if isinstance(a, ExitAction):
        return "EXIT"
    if isinstance(a, ReduceAction):
        return "REDUCE"
    if isinstance(a, CancelAction):
        return "CANCEL_ORDERS"
    return "MODIFY_RISK"


@dataclass(slots=True)
class Output:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def log(self, code: ReasonCode, symbol: str | None, ts: datetime, /, **fields: Any) -> Decision:
        d = Decision(code, symbol, ts, dict(fields))
        self.decisions.append(d)
        return d

    def extend(self, other: Output) -> Output:
        self.actions.extend(other.actions)
        self.decisions.extend(other.decisions)
        return self

    def codes(self) -> list[ReasonCode]:
        return [d.code for d in self.decisions]

    def first(self, code: ReasonCode) -> Decision | None:
        return next((d for d in self.decisions if d.code is code), None)
