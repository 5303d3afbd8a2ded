"""What the KPR engine hands back: Decisions (log lines with a ReasonCode) and Actions (intents).

Every engine call returns an :class:`Output`: ``actions`` in the order they must be sent (a CANCEL
before the EXIT of the same symbol) and ``decisions`` to be logged with their code, symbol and
fields. Actions map one-to-one to OMS intents (strategies.md C2/C3):

================  ==============================================================================
EnterAction       ENTER, marketable LIMIT buy (``limit_price``, ``cancel_after_sec``), risk payload
ReduceAction      REDUCE ``qty``, marketable limit sell at ``limit_price`` (C6)
ExitAction        EXIT of the whole allocation, marketable limit sell at ``limit_price`` (C6)
CancelAction      CANCEL_ORDERS of KPR's working orders in the symbol
ModifyRiskAction  MODIFY_RISK: stop_px / time_stop_ts of the allocation
================  ==============================================================================

Idempotency keys are deterministic (C3, :func:`strategies.sdk.keys.decision_key`):
``KPR:<symbol>:<ACTION>:<decision-time bucket>[:tag]`` — an ENTER's bucket is the minute of the bar
that decided it, so a restarted KPR deciding the same bar again gets the stored answer.
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
    """ENTER: marketable limit buy (P15). ``stop_px`` = stop_level (the OMS stores it as the soft stop)."""

    symbol: str
    qty: int
    limit_price: float
    stop_px: float
    confidence: str
    idempotency_key: str
    ts: datetime
    cancel_after_sec: float = 30.0
    rationale_code: str = ReasonCode.KPR_ENTRY.value
    order_type: str = "LIMIT"
    urgency: str = "NORMAL"
    time_horizon: str = "INTRADAY"

    def risk_payload(self) -> dict[str, Any]:
        return {
            "entry_px": self.limit_price,
            "stop_px": self.stop_px,
            "hard_stop_px": None,
            "rationale_code": self.rationale_code,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class ReduceAction:
    """REDUCE ``qty`` with a marketable-limit sell (P17 partial, P19 flow reduce)."""

    symbol: str
    qty: int
    reason: ReasonCode
    limit_price: float | None
    ref_price: float | None
    idempotency_key: str
    ts: datetime
    order_type: str = "LIMIT"
    urgency: str = "HIGH"
    time_horizon: str = "INTRADAY"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class ExitAction:
    """EXIT the whole allocation with a marketable-limit sell (C6)."""

    symbol: str
    reason: ReasonCode
    limit_price: float | None
    ref_price: float | None
    idempotency_key: str
    ts: datetime
    order_type: str = "LIMIT"
    urgency: str = "HIGH"
    time_horizon: str = "INTRADAY"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class CancelAction:
    """CANCEL_ORDERS of KPR's working orders in ``symbol``."""

    symbol: str
    reason: ReasonCode
    idempotency_key: str
    ts: datetime
    urgency: str = "HIGH"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class ModifyRiskAction:
    """MODIFY_RISK: publish the allocation's stop and time stop (read back on recovery)."""

    symbol: str
    stop_px: float
    time_stop_ts: datetime | None
    idempotency_key: str
    ts: datetime
    rationale_code: str = ReasonCode.KPR_FILL.value


Action = EnterAction | ReduceAction | ExitAction | CancelAction | ModifyRiskAction


def intent_type(a: Action) -> str:
    if isinstance(a, EnterAction):
        return "ENTER"
    if isinstance(a, ReduceAction):
        return "REDUCE"
    if isinstance(a, ExitAction):
        return "EXIT"
    if isinstance(a, CancelAction):
        return "CANCEL_ORDERS"
    return "MODIFY_RISK"


@dataclass(slots=True)
class Output:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def log(
        self, code: ReasonCode, symbol: str | None, ts: datetime, /, *, alert: bool = False, **fields: Any
    ) -> Decision:
        d = Decision(code, symbol, ts, dict(fields), alert)
        self.decisions.append(d)
        return d

    def extend(self, other: Output) -> Output:
        self.actions.extend(other.actions)
        self.decisions.extend(other.decisions)
        return self

    def codes(self) -> list[ReasonCode]:
        """Decision codes in order (handy in tests and logs)."""
        return [d.code for d in self.decisions]
