"""SQLAlchemy models: the single source of the database schema.

Every table holds the rows of one record kind of ``oms.core.types`` (``TABLE``), flattened into
typed columns. Every row carries ``oms_instance_id`` (the OMS that wrote it: several hosts share one
Postgres) and the primary key is ``(oms_instance_id, *KEY)``, so copying a journal entry twice is an
upsert, never a second row. ``copied_at`` is set by the database whenever the drainer writes a row.

Timestamps are ``TIMESTAMP WITH TIME ZONE`` stored in UTC (``UTCDateTime`` also makes SQLite, which
has no time zones, hand back aware UTC datetimes). Dict/list fields are JSON (JSONB on Postgres).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every dialect.

    Naive datetimes are refused: a naive KST time stored as UTC would be off by nine hours.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware datetimes only")
        value = value.astimezone(UTC)
        # SQLite's DATETIME ignores tzinfo; store the UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        }
    )
    type_annotation_map = {
        str: sa.String(),
        int: sa.BigInteger(),
        datetime: UTCDateTime(),
        float: sa.Double(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        dict[str, str]: JSONType,
    }


def _instance() -> Mapped[str]:
    return mapped_column(primary_key=True)


def _copied_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), server_default=sa.func.now(), nullable=False)


def _generated(source: str) -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), sa.Computed(source, persisted=True), nullable=True)


class Intent(Base):
    __tablename__ = "intents"
    oms_instance_id: Mapped[str] = _instance()
    intent_id: Mapped[str] = mapped_column(primary_key=True)
    strategy_id: Mapped[str]
    symbol: Mapped[str]
    intent_type: Mapped[str]
    desired_qty: Mapped[int | None]
    target_qty: Mapped[int | None]
    urgency: Mapped[str]
    time_horizon: Mapped[str]
    idempotency_key: Mapped[str]
    signal_hash: Mapped[str | None]
    constraints: Mapped[dict[str, Any]]
    risk_payload: Mapped[dict[str, Any]]
    status: Mapped[str]
    message: Mapped[str]
    reason_code: Mapped[str | None]
    modified_qty: Mapped[int | None]
    order_id: Mapped[str | None]
    cooldown_until: Mapped[datetime | None]
    received_at: Mapped[datetime]
    decided_at: Mapped[datetime]
    copied_at: Mapped[datetime] = _copied_at()
    created_at: Mapped[datetime] = _generated("received_at")
    """``received_at`` under the name the operators' SQL uses (a generated column: never written)."""

    __table_args__ = (
        sa.UniqueConstraint("oms_instance_id", "idempotency_key", name="uq_intents_idempotency_key"),
        sa.Index("ix_intents_strategy", "oms_instance_id", "strategy_id", "received_at"),
        sa.Index("ix_intents_symbol", "oms_instance_id", "symbol", "received_at"),
        sa.Index("ix_intents_status", "oms_instance_id", "status"),
        sa.Index("ix_intents_received_at", "oms_instance_id", "received_at"),
    )


class Order(Base):
    __tablename__ = "orders"
    oms_instance_id: Mapped[str] = _instance()
    order_id: Mapped[str] = mapped_column(primary_key=True)
    intent_id: Mapped[str]
    strategy_id: Mapped[str]
    symbol: Mapped[str]
    side: Mapped[str]
    qty: Mapped[int]
    order_type: Mapped[str]
    state: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    limit_price: Mapped[float | None]
    stop_price: Mapped[float | None]
    broker_order_id: Mapped[str | None]
    filled_qty: Mapped[int]
    avg_fill_price: Mapped[float]
    cancel_after_ts: Mapped[datetime | None]
    reason: Mapped[str | None]
    copied_at: Mapped[datetime] = _copied_at()

    __table_args__ = (
        sa.Index("ix_orders_strategy", "oms_instance_id", "strategy_id", "created_at"),
        sa.Index("ix_orders_symbol", "oms_instance_id", "symbol", "created_at"),
        sa.Index("ix_orders_state", "oms_instance_id", "state"),
        sa.Index("ix_orders_intent", "oms_instance_id", "intent_id"),
        sa.Index("ix_orders_broker_order_id", "oms_instance_id", "broker_order_id"),
        sa.Index("ix_orders_created_at", "oms_instance_id", "created_at"),
    )


class OrderEvent(Base):
    __tablename__ = "order_events"
    oms_instance_id: Mapped[str] = _instance()
    event_id: Mapped[str] = mapped_column(primary_key=True)
    order_id: Mapped[str]
    ts: Mapped[datetime]
    from_state: Mapped[str | None]
    to_state: Mapped[str]
    reason: Mapped[str | None]
    detail: Mapped[str | None]
    copied_at: Mapped[datetime] = _copied_at()

    __table_args__ = (
        sa.Index("ix_order_events_order", "oms_instance_id", "order_id", "ts"),
        sa.Index("ix_order_events_ts", "oms_instance_id", "ts"),
    )


class Fill(Base):
    __tablename__ = "fills"
    oms_instance_id: Mapped[str] = _instance()
    execution_id: Mapped[str] = mapped_column(primary_key=True)
    order_id: Mapped[str]
    strategy_id: Mapped[str]
    symbol: Mapped[str]
    side: Mapped[str]
    qty: Mapped[int]
    price: Mapped[float]
    ts: Mapped[datetime]
    commission: Mapped[float]
    tax: Mapped[float]
    copied_at: Mapped[datetime] = _copied_at()

    __table_args__ = (
        sa.Index("ix_fills_strategy", "oms_instance_id", "strategy_id", "ts"),
        sa.Index("ix_fills_symbol", "oms_instance_id", "symbol", "ts"),
        sa.Index("ix_fills_order", "oms_instance_id", "order_id"),
        sa.Index("ix_fills_ts", "oms_instance_id", "ts"),
    )


class Position(Base):
    __tablename__ = "positions"
    oms_instance_id: Mapped[str] = _instance()
    symbol: Mapped[str] = mapped_column(primary_key=True)
    real_qty: Mapped[int]
    avg_price: Mapped[float]
    updated_at: Mapped[datetime]
    frozen: Mapped[bool]
    freeze_reason: Mapped[str | None]
    copied_at: Mapped[datetime] = _copied_at()


class Allocation(Base):
    __tablename__ = "allocations"
    oms_instance_id: Mapped[str] = _instance()
    symbol: Mapped[str] = mapped_column(primary_key=True)
    strategy_id: Mapped[str] = mapped_column(primary_key=True)
    qty: Mapped[int]
    cost_basis: Mapped[float]
    updated_at: Mapped[datetime]
    entry_ts: Mapped[datetime | None]
    soft_stop_px: Mapped[float | None]
    hard_stop_px: Mapped[float | None]
    time_stop_ts: Mapped[datetime | None]
    entry_px: Mapped[float | None]
    initial_stop_px: Mapped[float | None]
    copied_at: Mapped[datetime] = _copied_at()

    __table_args__ = (sa.Index("ix_allocations_strategy", "oms_instance_id", "strategy_id"),)


class Trade(Base):
    __tablename__ = "trades"
    oms_instance_id: Mapped[str] = _instance()
    trade_id: Mapped[str] = mapped_column(primary_key=True)
    strategy_id: Mapped[str]
    symbol: Mapped[str]
    qty: Mapped[int]
    entry_ts: Mapped[datetime | None]
    exit_ts: Mapped[datetime]
    entry_px: Mapped[float]
    exit_px: Mapped[float]
    pnl: Mapped[float]
    exit_reason: Mapped[str | None]
    r_multiple: Mapped[float | None]
    copied_at: Mapped[datetime] = _copied_at()
    created_at: Mapped[datetime] = _generated("exit_ts")
    """When the trade was closed (a round trip's row is written at its exit): ``exit_ts``, generated."""

    __table_args__ = (
        sa.Index("ix_trades_strategy", "oms_instance_id", "strategy_id", "exit_ts"),
        sa.Index("ix_trades_symbol", "oms_instance_id", "symbol", "exit_ts"),
        sa.Index("ix_trades_exit_ts", "oms_instance_id", "exit_ts"),
    )


class RiskDailyStrategy(Base):
    __tablename__ = "risk_daily_strategy"
    oms_instance_id: Mapped[str] = _instance()
    trading_day: Mapped[str] = mapped_column(primary_key=True)
    strategy_id: Mapped[str] = mapped_column(primary_key=True)
    realized_pnl: Mapped[float]
    intents: Mapped[int]
    rejections: Mapped[int]
    fills: Mapped[int]
    updated_at: Mapped[datetime | None]
    copied_at: Mapped[datetime] = _copied_at()


class RiskDailyPortfolio(Base):
    __tablename__ = "risk_daily_portfolio"
    oms_instance_id: Mapped[str] = _instance()
    trading_day: Mapped[str] = mapped_column(primary_key=True)
    start_equity: Mapped[float]
    realized_pnl: Mapped[float]
    min_equity: Mapped[float | None]
    halted: Mapped[bool]
    updated_at: Mapped[datetime | None]
    copied_at: Mapped[datetime] = _copied_at()


class StrategyState(Base):
    __tablename__ = "strategy_state"
    oms_instance_id: Mapped[str] = _instance()
    strategy_id: Mapped[str] = mapped_column(primary_key=True)
    paused: Mapped[bool]
    last_heartbeat: Mapped[datetime | None]
    status_detail: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime | None]
    copied_at: Mapped[datetime] = _copied_at()


class OmsState(Base):
    __tablename__ = "oms_state"
    oms_instance_id: Mapped[str] = _instance()
    key: Mapped[str] = mapped_column(primary_key=True)
    safe_mode: Mapped[bool]
    halt_new_entries: Mapped[bool]
    flatten_in_progress: Mapped[bool]
    regime: Mapped[str | None]
    disabled_symbols: Mapped[list[str]]
    vi_cooldowns: Mapped[dict[str, str]]
    updated_at: Mapped[datetime | None]
    copied_at: Mapped[datetime] = _copied_at()


class SymbolMark(Base):
    __tablename__ = "symbol_marks"
    oms_instance_id: Mapped[str] = _instance()
    symbol: Mapped[str] = mapped_column(primary_key=True)
    last_price: Mapped[float]
    updated_at: Mapped[datetime]
    sector: Mapped[str | None]
    prev_close: Mapped[float | None]
    copied_at: Mapped[datetime] = _copied_at()


class ReconLog(Base):
    __tablename__ = "recon_log"
    oms_instance_id: Mapped[str] = _instance()
    recon_id: Mapped[str] = mapped_column(primary_key=True)
    ts: Mapped[datetime]
    kind: Mapped[str]
    symbol: Mapped[str | None]
    broker_qty: Mapped[int | None]
    ledger_qty: Mapped[int | None]
    detail: Mapped[str | None]
    duration_ms: Mapped[float | None]
    copied_at: Mapped[datetime] = _copied_at()

    __table_args__ = (
        sa.Index("ix_recon_log_ts", "oms_instance_id", "ts"),
        sa.Index("ix_recon_log_kind", "oms_instance_id", "kind", "ts"),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"
    oms_instance_id: Mapped[str] = _instance()
    audit_id: Mapped[str] = mapped_column(primary_key=True)
    ts: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    target: Mapped[str | None]
    payload: Mapped[dict[str, Any]]
    copied_at: Mapped[datetime] = _copied_at()

    __table_args__ = (sa.Index("ix_audit_log_ts", "oms_instance_id", "ts"),)


metadata: sa.MetaData = Base.metadata
TABLES: dict[str, sa.Table] = dict(metadata.tables)
SERVER_COLUMNS: frozenset[str] = frozenset({"oms_instance_id", "copied_at"})
"""Columns not carried by a record: filled from the drainer's instance id and by the database."""


def is_generated(column: sa.Column[Any]) -> bool:
    """A column the database computes (``created_at``): never inserted or updated."""
    return column.computed is not None


def key_columns(table: str) -> tuple[str, ...]:
    """The primary key (``oms_instance_id`` first, then the record's ``KEY``)."""
    return tuple(c.name for c in TABLES[table].primary_key.columns)
