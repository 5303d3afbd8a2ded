"""Reply bodies of v1 routes that the shared wire models (:mod:`broker_core.contract.wire`) do not cover:
intent history, strategy status and the answers of admin actions. Like the wire replies they allow
extra fields, so adding a field is not a breaking change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class IntentOut(_Out):
    """One intent as received and decided (``GET /api/v1/intents``)."""

    intent_id: str
    strategy_id: str
    symbol: str
    intent_type: str
    desired_qty: int | None = None
    target_qty: int | None = None
    urgency: str
    time_horizon: str
    idempotency_key: str | None = None
    signal_hash: str | None = None
    received_at: datetime
    constraints: dict[str, Any] = Field(default_factory=dict)
    risk_payload: dict[str, Any] = Field(default_factory=dict)
    status: str
    message: str = ""
    reason_code: str | None = None
    modified_qty: int | None = None
    order_id: str | None = None
    cooldown_until: datetime | None = None
    decided_at: datetime


class StrategyOut(_Out):
    """Status of one strategy (``GET /api/v1/strategies``)."""

    strategy_id: str
    paused: bool
    last_heartbeat: datetime | None = None
    status: dict[str, Any] | None = Field(default_factory=dict)
    """What the strategy last reported in its heartbeat."""
    realized_pnl: float = 0.0
    fills_today: int = 0
    positions: dict[str, int] = Field(default_factory=dict)


class HeartbeatOut(_Out):
    strategy_id: str
    paused: bool
    ts: datetime
    trading_state: str


class SafeModeOut(_Out):
    safe_mode: bool
    trading_state: str


class RegimeOut(_Out):
    regime: str | None


class ViCooldownOut(_Out):
    symbol: str
    until: datetime


class FlattenOut(_Out):
    order_ids: list[str]


class PausedOut(_Out):
    strategy_id: str
    paused: bool


class EodCleanupOut(_Out):
    cancelled: int
    """How many working orders the clean-up cancelled."""


class CorrectedOut(_Out):
    symbol: str
    frozen: bool


class ReloadOut(_Out):
    reloaded: bool


class SymbolEnabledOut(_Out):
    symbol: str
    enabled: bool


class QuoteOut(_Out):
    symbol: str
    ts: datetime
    last: float
    bid: float | None = None
    ask: float | None = None
    bid_size: int = 0
    ask_size: int = 0
    prev_close: float | None = None
    upper_limit: float | None = None
    lower_limit: float | None = None
    volume: int = 0
    halted: bool = False
    vi_ref_price: float | None = None


class BarOut(_Out):
    """One bar; adapters may add fields (e.g. turnover)."""

    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int


class BarsOut(_Out):
    """Minute or daily bars of one symbol."""

    symbol: str
    interval: str
    start: str | None = None
    """The window served (ISO; a date for daily bars)."""
    end: str | None = None
    bars: list[BarOut]


class InvestorFlowOut(_Out):
    symbol: str
    start: str | None = None
    end: str | None = None
    rows: list[dict[str, Any]]
