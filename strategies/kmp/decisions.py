"""What the KMP engine hands back: reason codes (§1.10), Decisions (log lines) and Actions (intents).

Every engine call returns an :class:`Output`: ``actions`` in the order they must be sent (a CANCEL
before the EXIT of the same symbol) and ``decisions`` to be logged with their code, symbol and
fields. Actions map one-to-one to OMS intents (strategies.md C2/C3):

================  ==============================================================================
EnterAction       ENTER, STOP_LIMIT buy (stop_price, limit_price, cancel_after_sec), risk_payload
ExitAction        EXIT of the whole allocation, marketable limit sell at ``limit_price`` (C6)
FlattenAction     FLATTEN (every KMP allocation)
CancelAction      CANCEL_ORDERS of KMP's working orders in the symbol
ModifyRiskAction  MODIFY_RISK: stop_px / hard_stop_px / time_stop_ts of the allocation
================  ==============================================================================

Idempotency keys are deterministic (C3): ``KMP-<symbol>-<ACTION>-<decision ts to the second>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode

GATE_CODES = frozenset(
    {
        ReasonCode.KMP_G_TIME,
        ReasonCode.KMP_G_MAX_POS,
        ReasonCode.KMP_G_SECTOR,
        ReasonCode.KMP_G_DAY_LOSS,
        ReasonCode.KMP_G_RISK_OFF,
        ReasonCode.KMP_G_TIME_DECAY,
        ReasonCode.KMP_G_RVOL,
        ReasonCode.KMP_G_SPREAD,
        ReasonCode.KMP_G_SPREAD_NA,
        ReasonCode.KMP_VI_WALL,
        ReasonCode.KMP_VI_RECENT,
        ReasonCode.KMP_G_QUALITY,
        ReasonCode.KMP_G_QTY,
        ReasonCode.KMP_G_NAV_NA,
        ReasonCode.KMP_G_RETRY_WAIT,
    }
)


@dataclass(frozen=True, slots=True)
class Decision:
    """One loggable decision: reason code, symbol (None = strategy-wide), when, and its inputs."""

    code: ReasonCode
    symbol: str | None
    ts: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    alert: bool = False


def idem_key(symbol: str, action: str, ts: datetime, strategy_id: str = "KMP") -> str:
    return f"{strategy_id}-{symbol}-{action}-{ts.astimezone(KST):%Y%m%dT%H%M%S}"


@dataclass(frozen=True, slots=True)
class EnterAction:
    """ENTER: stop-limit buy (K13). ``entry_px`` = limit, ``stop_px`` = initial stop."""

    symbol: str
    qty: int
    stop_price: float
    limit_price: float
    cancel_after_sec: float
    stop_px: float
    hard_stop_px: float | None
    confidence: str
    idempotency_key: str
    ts: datetime
    rationale_code: str = ReasonCode.KMP_ENTRY.value
    order_type: str = "STOP_LIMIT"
    urgency: str = "NORMAL"
    time_horizon: str = "INTRADAY"
    quality: float = 0.0

    @property
    def entry_px(self) -> float:
        return self.limit_price

    def risk_payload(self) -> dict[str, Any]:
        return {
            "entry_px": self.limit_price,
            "stop_px": self.stop_px,
            "hard_stop_px": self.hard_stop_px,
            "rationale_code": self.rationale_code,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class ExitAction:
    """EXIT the whole allocation (``qty`` None) with a marketable-limit sell (C6/K19)."""

    symbol: str
    reason: ReasonCode
    limit_price: float | None
    ref_price: float | None
    idempotency_key: str
    ts: datetime
    qty: int | None = None
    order_type: str = "LIMIT"
    style: str = "MARKETABLE_LIMIT"
    urgency: str = "HIGH"
    time_horizon: str = "INTRADAY"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class FlattenAction:
    """FLATTEN every KMP allocation (K16 risk / 14:30)."""

    reason: ReasonCode
    idempotency_key: str
    ts: datetime
    symbol: str = "*"
    urgency: str = "HIGH"

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class CancelAction:
    """CANCEL_ORDERS of KMP's working orders in ``symbol``."""

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
    """MODIFY_RISK: publish the allocation's stop levels and time stop to the OMS."""

    symbol: str
    stop_px: float
    hard_stop_px: float | None
    time_stop_ts: datetime | None
    idempotency_key: str
    ts: datetime
    rationale_code: str = ReasonCode.KMP_FILL.value


Action = EnterAction | ExitAction | FlattenAction | CancelAction | ModifyRiskAction


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
