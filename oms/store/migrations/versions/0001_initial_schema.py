"""initial schema: all OMS tables

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:23:25.462783
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "allocations",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("cost_basis", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("soft_stop_px", sa.Double(), nullable=True),
        sa.Column("hard_stop_px", sa.Double(), nullable=True),
        sa.Column("time_stop_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_px", sa.Double(), nullable=True),
        sa.Column("initial_stop_px", sa.Double(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "symbol", "strategy_id", name=op.f("pk_allocations")),
    )
    op.create_index("ix_allocations_strategy", "allocations", ["oms_instance_id", "strategy_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("audit_id", sa.String(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "audit_id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["oms_instance_id", "ts"], unique=False)

    op.create_table(
        "fills",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("execution_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("commission", sa.Double(), nullable=False),
        sa.Column("tax", sa.Double(), nullable=False),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "execution_id", name=op.f("pk_fills")),
    )
    op.create_index("ix_fills_order", "fills", ["oms_instance_id", "order_id"], unique=False)
    op.create_index("ix_fills_strategy", "fills", ["oms_instance_id", "strategy_id", "ts"], unique=False)
    op.create_index("ix_fills_symbol", "fills", ["oms_instance_id", "symbol", "ts"], unique=False)
    op.create_index("ix_fills_ts", "fills", ["oms_instance_id", "ts"], unique=False)

    op.create_table(
        "intents",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("intent_id", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("intent_type", sa.String(), nullable=False),
        sa.Column("desired_qty", sa.BigInteger(), nullable=True),
        sa.Column("target_qty", sa.BigInteger(), nullable=True),
        sa.Column("urgency", sa.String(), nullable=False),
        sa.Column("time_horizon", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("signal_hash", sa.String(), nullable=True),
        sa.Column(
            "constraints", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "risk_payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("reason_code", sa.String(), nullable=True),
        sa.Column("modified_qty", sa.BigInteger(), nullable=True),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "intent_id", name=op.f("pk_intents")),
        sa.UniqueConstraint("oms_instance_id", "idempotency_key", name="uq_intents_idempotency_key"),
    )
    op.create_index("ix_intents_received_at", "intents", ["oms_instance_id", "received_at"], unique=False)
    op.create_index("ix_intents_status", "intents", ["oms_instance_id", "status"], unique=False)
    op.create_index("ix_intents_strategy", "intents", ["oms_instance_id", "strategy_id", "received_at"], unique=False)
    op.create_index("ix_intents_symbol", "intents", ["oms_instance_id", "symbol", "received_at"], unique=False)

    op.create_table(
        "oms_state",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("safe_mode", sa.Boolean(), nullable=False),
        sa.Column("halt_new_entries", sa.Boolean(), nullable=False),
        sa.Column("flatten_in_progress", sa.Boolean(), nullable=False),
        sa.Column("regime", sa.String(), nullable=True),
        sa.Column(
            "disabled_symbols",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "vi_cooldowns",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "key", name=op.f("pk_oms_state")),
    )
    op.create_table(
        "order_events",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "event_id", name=op.f("pk_order_events")),
    )
    op.create_index("ix_order_events_order", "order_events", ["oms_instance_id", "order_id", "ts"], unique=False)
    op.create_index("ix_order_events_ts", "order_events", ["oms_instance_id", "ts"], unique=False)

    op.create_table(
        "orders",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("intent_id", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("limit_price", sa.Double(), nullable=True),
        sa.Column("stop_price", sa.Double(), nullable=True),
        sa.Column("broker_order_id", sa.String(), nullable=True),
        sa.Column("filled_qty", sa.BigInteger(), nullable=False),
        sa.Column("avg_fill_price", sa.Double(), nullable=False),
        sa.Column("cancel_after_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "order_id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_broker_order_id", "orders", ["oms_instance_id", "broker_order_id"], unique=False)
    op.create_index("ix_orders_created_at", "orders", ["oms_instance_id", "created_at"], unique=False)
    op.create_index("ix_orders_intent", "orders", ["oms_instance_id", "intent_id"], unique=False)
    op.create_index("ix_orders_state", "orders", ["oms_instance_id", "state"], unique=False)
    op.create_index("ix_orders_strategy", "orders", ["oms_instance_id", "strategy_id", "created_at"], unique=False)
    op.create_index("ix_orders_symbol", "orders", ["oms_instance_id", "symbol", "created_at"], unique=False)

    op.create_table(
        "positions",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("real_qty", sa.BigInteger(), nullable=False),
        sa.Column("avg_price", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("freeze_reason", sa.String(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "symbol", name=op.f("pk_positions")),
    )
    op.create_table(
        "recon_log",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("recon_id", sa.String(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=True),
        sa.Column("broker_qty", sa.BigInteger(), nullable=True),
        sa.Column("ledger_qty", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "recon_id", name=op.f("pk_recon_log")),
    )
    op.create_index("ix_recon_log_kind", "recon_log", ["oms_instance_id", "kind", "ts"], unique=False)
    op.create_index("ix_recon_log_ts", "recon_log", ["oms_instance_id", "ts"], unique=False)

    op.create_table(
        "risk_daily_portfolio",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("trading_day", sa.String(), nullable=False),
        sa.Column("start_equity", sa.Double(), nullable=False),
        sa.Column("realized_pnl", sa.Double(), nullable=False),
        sa.Column("min_equity", sa.Double(), nullable=True),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "trading_day", name=op.f("pk_risk_daily_portfolio")),
    )
    op.create_table(
        "risk_daily_strategy",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("trading_day", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("realized_pnl", sa.Double(), nullable=False),
        sa.Column("intents", sa.BigInteger(), nullable=False),
        sa.Column("rejections", sa.BigInteger(), nullable=False),
        sa.Column("fills", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "trading_day", "strategy_id", name=op.f("pk_risk_daily_strategy")),
    )
    op.create_table(
        "strategy_state",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status_detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "strategy_id", name=op.f("pk_strategy_state")),
    )
    op.create_table(
        "trades",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("trade_id", sa.String(), nullable=False),
        sa.Column("strategy_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("entry_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_px", sa.Double(), nullable=False),
        sa.Column("exit_px", sa.Double(), nullable=False),
        sa.Column("pnl", sa.Double(), nullable=False),
        sa.Column("exit_reason", sa.String(), nullable=True),
        sa.Column("r_multiple", sa.Double(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "trade_id", name=op.f("pk_trades")),
    )
    op.create_index("ix_trades_exit_ts", "trades", ["oms_instance_id", "exit_ts"], unique=False)
    op.create_index("ix_trades_strategy", "trades", ["oms_instance_id", "strategy_id", "exit_ts"], unique=False)
    op.create_index("ix_trades_symbol", "trades", ["oms_instance_id", "symbol", "exit_ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trades_symbol", table_name="trades")
    op.drop_index("ix_trades_strategy", table_name="trades")
    op.drop_index("ix_trades_exit_ts", table_name="trades")

    op.drop_table("trades")
    op.drop_table("strategy_state")
    op.drop_table("risk_daily_strategy")
    op.drop_table("risk_daily_portfolio")
    op.drop_index("ix_recon_log_ts", table_name="recon_log")
    op.drop_index("ix_recon_log_kind", table_name="recon_log")

    op.drop_table("recon_log")
    op.drop_table("positions")
    op.drop_index("ix_orders_symbol", table_name="orders")
    op.drop_index("ix_orders_strategy", table_name="orders")
    op.drop_index("ix_orders_state", table_name="orders")
    op.drop_index("ix_orders_intent", table_name="orders")
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_orders_broker_order_id", table_name="orders")

    op.drop_table("orders")
    op.drop_index("ix_order_events_ts", table_name="order_events")
    op.drop_index("ix_order_events_order", table_name="order_events")

    op.drop_table("order_events")
    op.drop_table("oms_state")
    op.drop_index("ix_intents_symbol", table_name="intents")
    op.drop_index("ix_intents_strategy", table_name="intents")
    op.drop_index("ix_intents_status", table_name="intents")
    op.drop_index("ix_intents_received_at", table_name="intents")

    op.drop_table("intents")
    op.drop_index("ix_fills_ts", table_name="fills")
    op.drop_index("ix_fills_symbol", table_name="fills")
    op.drop_index("ix_fills_strategy", table_name="fills")
    op.drop_index("ix_fills_order", table_name="fills")

    op.drop_table("fills")
    op.drop_index("ix_audit_log_ts", table_name="audit_log")

    op.drop_table("audit_log")
    op.drop_index("ix_allocations_strategy", table_name="allocations")

    op.drop_table("allocations")
