"""OMS domain records. Each record is one row image: the journal stores it, the store copies it to
the database, and state is rebuilt from these rows after a restart. The contract's enums and an
intent's ``constraints``/``risk_payload`` come from ``broker_core.contract``.

Every record kind maps to one table (``TABLE``) and has a natural key (``KEY``), so copying a row
twice is an upsert, never a second row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from broker_core.contract.enums import (
    IntentStatus,
    IntentType,
    OrderState,
    OrderType,
    TimeHorizon,
    TradingState,
    Urgency,
)
from broker_core.contract.wire import Constraints, RiskPayload

__all__ = [
    "AllocationRecord",
    "AuditRecord",
    "Constraints",
    "FillRecord",
    "Intent",
    "IntentRecord",
    "IntentResult",
    "IntentStatus",
    "IntentType",
    "OmsStateRecord",
    "OrderEventRecord",
    "OrderRecord",
    "OrderState",
    "OrderType",
    "PositionRecord",
    "RECORD_TYPES",
    "Record",
    "ReconRecord",
    "RiskDailyPortfolioRecord",
    "RiskDailyStrategyRecord",
    "RiskPayload",
    "StrategyStateRecord",
    "SymbolMarkRecord",
    "TimeHorizon",
    "TradeRecord",
    "TradingState",
    "UNKNOWN_STRATEGY",
    "Urgency",
]

UNKNOWN_STRATEGY = "_UNKNOWN_"


@dataclass(frozen=True, slots=True)
class Intent:
    intent_id: str
    strategy_id: str
    symbol: str
    intent_type: IntentType
    received_at: datetime
    idempotency_key: str
    desired_qty: int | None = None
    target_qty: int | None = None
    urgency: Urgency = Urgency.NORMAL
    time_horizon: TimeHorizon = TimeHorizon.INTRADAY
    constraints: Constraints = field(default_factory=Constraints)
    risk_payload: RiskPayload = field(default_factory=RiskPayload)
    signal_hash: str | None = None


class Record(Protocol):
    """What every record class declares: its table and the columns of its natural key."""

    TABLE: ClassVar[str]
    KEY: ClassVar[tuple[str, ...]]


@dataclass(slots=True)
class IntentResult:
    intent_id: str
    status: IntentStatus
    message: str = ""
    reason_code: str | None = None
    modified_qty: int | None = None
    order_id: str | None = None
    cooldown_until: datetime | None = None


@dataclass(slots=True)
class IntentRecord:
    TABLE: ClassVar[str] = "intents"
    KEY: ClassVar[tuple[str, ...]] = ("intent_id",)
    intent: Intent
    result: IntentResult
    decided_at: datetime


@dataclass(slots=True)
class OrderRecord:
    TABLE: ClassVar[str] = "orders"
    KEY: ClassVar[tuple[str, ...]] = ("order_id",)
    order_id: str
    """Our client order id: unique across restarts and hosts."""
    intent_id: str
    strategy_id: str
    symbol: str
    side: str
    qty: int
    order_type: OrderType
    state: OrderState
    created_at: datetime
    updated_at: datetime
    limit_price: float | None = None
    stop_price: float | None = None
    broker_order_id: str | None = None
    filled_qty: int = 0
    avg_fill_price: float = 0.0
    cancel_after_ts: datetime | None = None
    reason: str | None = None

    @property
    def leaves_qty(self) -> int:
        return 0 if self.state.is_terminal else self.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class OrderEventRecord:
    TABLE: ClassVar[str] = "order_events"
    KEY: ClassVar[tuple[str, ...]] = ("event_id",)
    event_id: str
    order_id: str
    ts: datetime
    from_state: OrderState | None
    to_state: OrderState
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class FillRecord:
    TABLE: ClassVar[str] = "fills"
    KEY: ClassVar[tuple[str, ...]] = ("execution_id",)
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


@dataclass(slots=True)
class PositionRecord:
    TABLE: ClassVar[str] = "positions"
    KEY: ClassVar[tuple[str, ...]] = ("symbol",)
    symbol: str
    real_qty: int
    avg_price: float
    updated_at: datetime
    frozen: bool = False
    freeze_reason: str | None = None


@dataclass(slots=True)
class AllocationRecord:
    TABLE: ClassVar[str] = "allocations"
    KEY: ClassVar[tuple[str, ...]] = ("symbol", "strategy_id")
    symbol: str
    strategy_id: str
    qty: int
    cost_basis: float
    """Average entry price of the allocation's open quantity."""
    updated_at: datetime
    entry_ts: datetime | None = None
    soft_stop_px: float | None = None
    hard_stop_px: float | None = None
    time_stop_ts: datetime | None = None
    entry_px: float | None = None
    """The intent's declared entry price (for R multiples)."""
    initial_stop_px: float | None = None


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One round trip of a strategy in a symbol (entry to flat), or a partial exit of one."""

    TABLE: ClassVar[str] = "trades"
    KEY: ClassVar[tuple[str, ...]] = ("trade_id",)
    trade_id: str
    strategy_id: str
    symbol: str
    qty: int
    entry_ts: datetime | None
    exit_ts: datetime
    entry_px: float
    exit_px: float
    pnl: float
    exit_reason: str | None = None
    r_multiple: float | None = None


@dataclass(frozen=True, slots=True)
class ReconRecord:
    TABLE: ClassVar[str] = "recon_log"
    KEY: ClassVar[tuple[str, ...]] = ("recon_id",)
    recon_id: str
    ts: datetime
    kind: str
    """e.g. POSITION_EXCESS, POSITION_DEFICIT, CASH, ORDER_SYNC, CYCLE_OK, CYCLE_FAILED."""
    symbol: str | None = None
    broker_qty: int | None = None
    ledger_qty: int | None = None
    detail: str | None = None
    duration_ms: float | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    TABLE: ClassVar[str] = "audit_log"
    KEY: ClassVar[tuple[str, ...]] = ("audit_id",)
    audit_id: str
    ts: datetime
    actor: str
    action: str
    target: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StrategyStateRecord:
    TABLE: ClassVar[str] = "strategy_state"
    KEY: ClassVar[tuple[str, ...]] = ("strategy_id",)
    strategy_id: str
    paused: bool = False
    last_heartbeat: datetime | None = None
    status_detail: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(slots=True)
class OmsStateRecord:
    """Account-level switches; one row per OMS instance (key ``state``)."""

    TABLE: ClassVar[str] = "oms_state"
    KEY: ClassVar[tuple[str, ...]] = ("key",)
    key: str
    safe_mode: bool = False
    halt_new_entries: bool = False
    flatten_in_progress: bool = False
    regime: str | None = None
    disabled_symbols: list[str] = field(default_factory=list)
    vi_cooldowns: dict[str, str] = field(default_factory=dict)
    """symbol → ISO timestamp until which entries are deferred."""
    updated_at: datetime | None = None


@dataclass(slots=True)
class RiskDailyStrategyRecord:
    TABLE: ClassVar[str] = "risk_daily_strategy"
    KEY: ClassVar[tuple[str, ...]] = ("trading_day", "strategy_id")
    trading_day: str
    strategy_id: str
    realized_pnl: float = 0.0
    intents: int = 0
    rejections: int = 0
    fills: int = 0
    updated_at: datetime | None = None


@dataclass(slots=True)
class RiskDailyPortfolioRecord:
    TABLE: ClassVar[str] = "risk_daily_portfolio"
    KEY: ClassVar[tuple[str, ...]] = ("trading_day",)
    trading_day: str
    start_equity: float
    realized_pnl: float = 0.0
    min_equity: float | None = None
    halted: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SymbolMarkRecord:
    """The last price and sector of a held symbol, for the dashboard views (market value, heat map).

    ``prev_close`` is the previous session's close when the broker's quote carries it."""

    TABLE: ClassVar[str] = "symbol_marks"
    KEY: ClassVar[tuple[str, ...]] = ("symbol",)
    symbol: str
    last_price: float
    updated_at: datetime
    sector: str | None = None
    prev_close: float | None = None


RECORD_TYPES: tuple[type[Record], ...] = (
    IntentRecord,
    OrderRecord,
    OrderEventRecord,
    FillRecord,
    PositionRecord,
    AllocationRecord,
    TradeRecord,
    ReconRecord,
    AuditRecord,
    StrategyStateRecord,
    OmsStateRecord,
    RiskDailyStrategyRecord,
    RiskDailyPortfolioRecord,
    SymbolMarkRecord,
)
