"""What the Nulrimok engine hands back: Decisions (log lines with a reason code) and Actions (intents).

Every engine call returns an :class:`Output`: ``actions`` in the order they must be sent and
``decisions`` to log. Actions map one-to-one to OMS intents (strategies.md C2/C3), all SWING:

================  ==============================================================================
EnterAction       ENTER, LIMIT buy at ``limit_price`` (N20), ``cancel_after_sec``, risk payload
ExitAction        EXIT of the whole allocation, marketable limit sell at ``limit_price`` (C6)
ReduceAction      REDUCE ``qty`` (N27 mean reversion), marketable limit sell
CancelAction      CANCEL_ORDERS of Nulrimok's working orders in the symbol
ModifyRiskAction  MODIFY_RISK: the allocation's stop (and time stop) at the OMS
================  ==============================================================================

Idempotency keys are deterministic (C3): :func:`strategies.sdk.keys.decision_key` over strategy,
symbol, action and the decision's time bucket — the 30m bar for entries and bar-close exits, the
minute otherwise — plus a tag telling apart two decisions in one bucket (the exit reason, a retry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker_core.contract.reasons import ReasonCode
from strategies.sdk.keys import decision_key

DROP_CODES: tuple[ReasonCode, ...] = (
    ReasonCode.NULRIMOK_DROP_NO_DATA,
    ReasonCode.NULRIMOK_DROP_ADV,
    ReasonCode.NULRIMOK_DROP_EARNINGS,
    ReasonCode.NULRIMOK_DROP_BLACKLIST,
    ReasonCode.NULRIMOK_DROP_HALTED,
    ReasonCode.NULRIMOK_DROP_FLOW,
    ReasonCode.NULRIMOK_DROP_LEADER,
    ReasonCode.NULRIMOK_DROP_TREND,
    ReasonCode.NULRIMOK_DROP_ACCEPTANCE,
    ReasonCode.NULRIMOK_DROP_TIER_C,
    ReasonCode.NULRIMOK_DROP_RANK,
    ReasonCode.NULRIMOK_DROP_CONVICTION,
)
"""Why a universe ticker is not tradable, in pipeline order (the first that applies is recorded)."""

GATE_CODES = frozenset(
    {
        ReasonCode.NULRIMOK_G_TIER_C,
        ReasonCode.NULRIMOK_G_TIME,
        ReasonCode.NULRIMOK_G_NAV_NA,
        ReasonCode.NULRIMOK_G_PORTFOLIO_RISK,
        ReasonCode.NULRIMOK_G_SECTOR_RISK,
        ReasonCode.NULRIMOK_G_QTY,
    }
)
"""A confirmed setup that did not become an ENTER (the funnel's gate stage)."""

EXIT_CODES = frozenset(
    {
        ReasonCode.NULRIMOK_X_STOP,
        ReasonCode.NULRIMOK_X_AVWAP_BREAK,
        ReasonCode.NULRIMOK_X_NO_RECLAIM,
        ReasonCode.NULRIMOK_X_ENTRY_DAY,
        ReasonCode.NULRIMOK_X_FAILED,
        ReasonCode.NULRIMOK_X_MOMENTUM,
        ReasonCode.NULRIMOK_X_MR_TRAIL,
        ReasonCode.NULRIMOK_X_GRIND,
        ReasonCode.NULRIMOK_X_FLOW_REVERSAL,
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


def idem_key(
    strategy_id: str, symbol: str, action: str, ts: datetime, *, bucket_sec: int = 60, tag: str | None = None
) -> str:
    return decision_key(strategy_id, symbol, action, ts, bucket_sec=bucket_sec, tag=tag)


@dataclass(frozen=True, slots=True)
class EnterAction:
    """ENTER: one limit buy at ``min(round_up(avwap_ref), band_upper)`` (N20)."""

    symbol: str
    qty: int
    limit_price: float
    cancel_after_sec: float
    stop_px: float
    confidence: str
    idempotency_key: str
    ts: datetime
    risk_won: float = 0.0
    rationale_code: str = ReasonCode.NULRIMOK_ENTRY.value
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
    """EXIT the whole allocation with a marketable-limit sell (C6); ``limit_price`` None = the OMS's own."""

    symbol: str
    reason: ReasonCode
    limit_price: float | None
    ref_price: float | None
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
    """REDUCE ``qty`` of the allocation with a marketable-limit sell (N27 mean reversion target)."""

    symbol: str
    qty: int
    reason: ReasonCode
    limit_price: float | None
    ref_price: float | None
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
    """CANCEL_ORDERS of Nulrimok's working orders in ``symbol``."""

    symbol: str
    reason: ReasonCode
    idempotency_key: str
    ts: datetime

    @property
    def rationale_code(self) -> str:
        return self.reason.value


@dataclass(frozen=True, slots=True)
class ModifyRiskAction:
    """MODIFY_RISK: publish the allocation's stop (N21) and time stop to the OMS."""

    symbol: str
    stop_px: float
    time_stop_ts: datetime | None
    idempotency_key: str
    ts: datetime
    rationale_code: str = ReasonCode.NULRIMOK_FILL.value


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
        return [d.code for d in self.decisions]
