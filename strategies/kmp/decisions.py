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
from enum import StrEnum
from typing import Any

from broker_core.clock import KST


class Code(StrEnum):
    # ---- premarket / universe / scan
    PREMARKET = "KMP_PREMARKET"
    UNIVERSE_DROP = "KMP_UNIVERSE_DROP"
    GAP_SKIP = "KMP_GAP_SKIP"
    SCAN = "KMP_SCAN"
    SCAN_LATE = "KMP_SCAN_LATE"
    CANDIDATE = "KMP_CANDIDATE"
    OR_RANGE = "KMP_OR_RANGE"
    VI_MISSING = "KMP_VI_MISSING"
    WATCH = "KMP_WATCH"
    # ---- state machine
    BREAK = "KMP_BREAK"
    ARMED = "KMP_ARMED"
    ACCEPT_TIMEOUT = "KMP_ACCEPT_TIMEOUT"
    SUPPORT_LOST = "KMP_SUPPORT_LOST"
    WINDOW_END = "KMP_WINDOW_END"
    SLOT_DENIED = "KMP_SLOT_DENIED"
    SLOTS = "KMP_SLOTS"
    # ---- entry gates (K12, in order)
    G_TIME = "KMP_G_TIME"
    G_MAX_POS = "KMP_G_MAX_POS"
    G_SECTOR = "KMP_G_SECTOR"
    G_DAY_LOSS = "KMP_G_DAY_LOSS"
    G_RISK_OFF = "KMP_G_RISK_OFF"
    G_TIME_DECAY = "KMP_G_TIME_DECAY"
    G_RVOL = "KMP_G_RVOL"
    G_SPREAD = "KMP_G_SPREAD"
    G_SPREAD_NA = "KMP_G_SPREAD_NA"
    VI_WALL = "KMP_VI_WALL"
    VI_RECENT = "KMP_VI_RECENT"
    G_QUALITY = "KMP_G_QUALITY"
    G_QTY = "KMP_G_QTY"
    G_NAV_NA = "KMP_G_NAV_NA"
    G_RETRY_WAIT = "KMP_G_RETRY_WAIT"
    # ---- orders
    ENTRY = "KMP_ENTRY"
    ENTRY_ACK = "KMP_ENTRY_ACK"
    INTENT_RESULT = "KMP_INTENT_RESULT"
    ENTRY_MODIFIED = "KMP_ENTRY_MODIFIED"
    ENTRY_DEFERRED = "KMP_ENTRY_DEFERRED"
    ENTRY_REJECTED = "KMP_ENTRY_REJECTED"
    MISSED_FILL = "KMP_MISSED_FILL"
    PARTIAL_KEPT = "KMP_PARTIAL_KEPT"
    FILL = "KMP_FILL"
    POSITION_RECOVERED = "KMP_POSITION_RECOVERED"
    POSITION_CLOSED = "KMP_POSITION_CLOSED"
    EXIT_RETRY = "KMP_EXIT_RETRY"
    # ---- exits (K16–K18)
    X_STOP = "KMP_X_STOP"
    X_EARLY_FAIL = "KMP_X_EARLY_FAIL"
    X_RISK = "KMP_X_RISK"
    X_EOD = "KMP_X_EOD"
    X_STALL = "KMP_X_STALL"
    X_TRAIL = "KMP_X_TRAIL"
    X_EXTERNAL = "KMP_X_EXTERNAL"
    # ---- regime / program / misc
    REGIME = "KMP_REGIME"
    PROGRAM = "KMP_PROGRAM"
    VI_EVENT = "KMP_VI_EVENT"
    DATA_IGNORED = "KMP_DATA_IGNORED"
    # ---- alerts
    ALERT_VI_BLOCKS = "KMP_ALERT_VI_BLOCKS"
    ALERT_MISSED_FILLS = "KMP_ALERT_MISSED_FILLS"
    ALERT_REST_FAILURES = "KMP_ALERT_REST_FAILURES"


GATE_CODES = frozenset({Code.G_TIME, Code.G_MAX_POS, Code.G_SECTOR, Code.G_DAY_LOSS, Code.G_RISK_OFF,
                        Code.G_TIME_DECAY, Code.G_RVOL, Code.G_SPREAD, Code.G_SPREAD_NA, Code.VI_WALL,
                        Code.VI_RECENT, Code.G_QUALITY, Code.G_QTY, Code.G_NAV_NA, Code.G_RETRY_WAIT})


@dataclass(frozen=True, slots=True)
class Decision:
    """One loggable decision: reason code, symbol (None = strategy-wide), when, and its inputs."""

    code: Code
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
    rationale_code: str = Code.ENTRY.value
    order_type: str = "STOP_LIMIT"
    urgency: str = "NORMAL"
    time_horizon: str = "INTRADAY"
    quality: float = 0.0

    @property
    def entry_px(self) -> float:
        return self.limit_price

    def risk_payload(self) -> dict[str, Any]:
        return {"entry_px": self.limit_price, "stop_px": self.stop_px, "hard_stop_px": self.hard_stop_px,
                "rationale_code": self.rationale_code, "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class ExitAction:
    """EXIT the whole allocation (``qty`` None) with a marketable-limit sell (C6/K19)."""

    symbol: str
    reason: Code
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

    reason: Code
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
    reason: Code
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
    rationale_code: str = Code.FILL.value


Action = EnterAction | ExitAction | FlattenAction | CancelAction | ModifyRiskAction


@dataclass(slots=True)
class Output:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def log(self, code: Code, symbol: str | None, ts: datetime, /, *, alert: bool = False, **fields: Any) -> Decision:
        d = Decision(code, symbol, ts, dict(fields), alert)
        self.decisions.append(d)
        return d

    def extend(self, other: Output) -> Output:
        self.actions.extend(other.actions)
        self.decisions.extend(other.decisions)
        return self

    def codes(self) -> list[Code]:
        """Decision codes in order (handy in tests and logs)."""
        return [d.code for d in self.decisions]
