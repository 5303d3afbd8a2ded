"""dashboard views, symbol marks, created_at on intents and trades

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00

* ``intents.created_at`` (= ``received_at``) and ``trades.created_at`` (= ``exit_ts``): generated columns, so
  the operators' SQL (``... ORDER BY created_at``) works and nothing writes them.
* ``symbol_marks``: last price, previous close and sector of each held symbol (written by the OMS), the source of
  market value, sector exposure and the heat map.
* The dashboard views below (Postgres only: they use time zones, ``FILTER`` and JSON operators; the embedded
  SQLite default gets the columns and the table, not the views). SELECT on them, and on every table as
  ``infra/postgres/init/01-roles.sh`` intends, is granted to ``trading_reader`` when that role exists. Days
  are KRX trading days: the date in Asia/Seoul. Metabase's questions (``infra/metabase``) read these views.

A later change of a view is a new revision with ``CREATE OR REPLACE VIEW``: this file stays as it ran.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENERATED = {"intents": "received_at", "trades": "exit_ts"}
READER_ROLE = "trading_reader"
KST = "'Asia/Seoul'"

VIEWS: dict[str, str] = {
    # one row per held symbol: quantity, cost, last mark, market value, unrealized and day P&L, sector
    "v_positions": f"""
SELECT p.oms_instance_id,
       p.symbol,
       COALESCE(m.sector, 'UNKNOWN') AS sector,
       p.real_qty AS qty,
       p.avg_price,
       COALESCE(m.last_price, p.avg_price) AS last_price,
       m.prev_close,
       p.real_qty * COALESCE(m.last_price, p.avg_price) AS market_value,
       p.real_qty * p.avg_price AS cost_value,
       p.real_qty * (COALESCE(m.last_price, p.avg_price) - p.avg_price) AS unrealized_pnl,
       ref.day_ref_price,
       p.real_qty * (COALESCE(m.last_price, p.avg_price) - ref.day_ref_price) AS day_pnl,
       CASE WHEN ref.day_ref_price > 0
            THEN (COALESCE(m.last_price, p.avg_price) / ref.day_ref_price - 1) * 100 END AS day_pnl_pct,
       a.strategies,
       a.first_entry_ts,
       p.frozen,
       p.freeze_reason,
       m.updated_at AS marked_at,
       p.updated_at
  FROM positions p
  LEFT JOIN symbol_marks m ON m.oms_instance_id = p.oms_instance_id AND m.symbol = p.symbol
  LEFT JOIN (SELECT oms_instance_id, symbol,
                    string_agg(strategy_id || ':' || qty, ', ' ORDER BY strategy_id) AS strategies,
                    min(entry_ts) AS first_entry_ts
               FROM allocations WHERE qty <> 0 GROUP BY oms_instance_id, symbol) a
         ON a.oms_instance_id = p.oms_instance_id AND a.symbol = p.symbol
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.prev_close > 0 AND a.first_entry_ts IS NOT NULL
                        AND (a.first_entry_ts AT TIME ZONE {KST})::date
                            < (COALESCE(m.updated_at, p.updated_at) AT TIME ZONE {KST})::date
                   THEN m.prev_close ELSE p.avg_price END AS day_ref_price) ref
 WHERE p.real_qty <> 0""",
    # every fill with its order and intent: slippage against the decision price, latency from the intent
    "v_fills": f"""
SELECT f.oms_instance_id,
       f.execution_id,
       f.order_id,
       o.intent_id,
       f.strategy_id,
       f.symbol,
       f.side,
       f.qty,
       f.price,
       f.qty * f.price AS notional,
       f.commission,
       f.tax,
       f.ts AS filled_at,
       (f.ts AT TIME ZONE {KST})::date AS trading_day,
       i.intent_type,
       i.received_at AS intent_received_at,
       px.reference_price,
       CASE WHEN px.reference_price > 0 THEN
            (CASE WHEN f.side = 'BUY' THEN f.price - px.reference_price ELSE px.reference_price - f.price END)
            / px.reference_price * 10000 END AS slippage_bps,
       EXTRACT(EPOCH FROM (f.ts - i.received_at)) AS latency_sec,
       EXTRACT(EPOCH FROM (first.first_fill_at - i.received_at)) AS first_fill_latency_sec,
       f.ts = first.first_fill_at AS is_first_fill
  FROM fills f
  LEFT JOIN orders o ON o.oms_instance_id = f.oms_instance_id AND o.order_id = f.order_id
  LEFT JOIN intents i ON i.oms_instance_id = o.oms_instance_id AND i.intent_id = o.intent_id
  LEFT JOIN (SELECT oms_instance_id, order_id, min(ts) AS first_fill_at FROM fills GROUP BY 1, 2) first
         ON first.oms_instance_id = f.oms_instance_id AND first.order_id = f.order_id
  CROSS JOIN LATERAL (
       SELECT COALESCE((i.risk_payload ->> 'entry_px')::double precision,
                       (i.constraints ->> 'limit_price')::double precision,
                       o.limit_price) AS reference_price) px""",
    # every intent with the OMS's decision and its reason
    "v_intents": f"""
SELECT oms_instance_id,
       intent_id,
       strategy_id,
       symbol,
       intent_type,
       desired_qty,
       target_qty,
       modified_qty,
       status AS decision,
       reason_code,
       message AS reason,
       order_id,
       status IN ('ACCEPTED', 'EXECUTED', 'MODIFIED') AS succeeded,
       status = 'REJECTED' AS rejected,
       received_at,
       decided_at,
       EXTRACT(EPOCH FROM (decided_at - received_at)) * 1000 AS decision_ms,
       (received_at AT TIME ZONE {KST})::date AS trading_day
  FROM intents""",
    # realized P&L, intents, rejections, fills and closed trades per strategy, host and day
    "v_daily_pnl": f"""
SELECT r.oms_instance_id,
       r.trading_day::date AS trading_day,
       r.strategy_id,
       r.realized_pnl,
       r.intents,
       r.rejections,
       r.fills,
       COALESCE(t.trades, 0) AS trades,
       COALESCE(t.wins, 0) AS wins,
       COALESCE(t.trade_pnl, 0) AS trade_pnl
  FROM risk_daily_strategy r
  LEFT JOIN (SELECT oms_instance_id, (exit_ts AT TIME ZONE {KST})::date AS trading_day, strategy_id,
                    count(*) AS trades, count(*) FILTER (WHERE pnl > 0) AS wins, sum(pnl) AS trade_pnl
               FROM trades GROUP BY 1, 2, 3) t
         ON t.oms_instance_id = r.oms_instance_id AND t.trading_day = r.trading_day::date
        AND t.strategy_id = r.strategy_id""",
    # the account of each host per day: start equity, realized P&L (its strategies' sum), the day's low, the halt
    "v_daily_pnl_account": """
SELECT p.oms_instance_id,
       p.trading_day::date AS trading_day,
       p.start_equity,
       COALESCE(s.realized_pnl, 0) AS realized_pnl,
       CASE WHEN p.start_equity > 0 THEN COALESCE(s.realized_pnl, 0) / p.start_equity * 100 END AS realized_pnl_pct,
       p.min_equity,
       CASE WHEN p.start_equity > 0 THEN (p.min_equity - p.start_equity) / p.start_equity * 100 END
           AS max_intraday_drawdown_pct,
       p.halted,
       COALESCE(s.strategies, 0) AS strategies,
       COALESCE(s.fills, 0) AS fills,
       COALESCE(s.intents, 0) AS intents,
       COALESCE(s.rejections, 0) AS rejections
  FROM risk_daily_portfolio p
  LEFT JOIN (SELECT oms_instance_id, trading_day, count(*) AS strategies, sum(realized_pnl) AS realized_pnl,
                    sum(fills) AS fills,
                    sum(intents) AS intents, sum(rejections) AS rejections
               FROM risk_daily_strategy GROUP BY 1, 2) s
         ON s.oms_instance_id = p.oms_instance_id AND s.trading_day = p.trading_day""",
    # market value per sector and its share of the host's gross exposure
    "v_exposure_by_sector": """
SELECT oms_instance_id,
       sector,
       count(*) AS symbols,
       sum(market_value) AS market_value,
       sum(unrealized_pnl) AS unrealized_pnl,
       sum(abs(market_value)) * 100 / NULLIF(sum(sum(abs(market_value))) OVER (PARTITION BY oms_instance_id), 0)
           AS share_pct
  FROM v_positions
 GROUP BY oms_instance_id, sector""",
    # the heat map's source: one tile per held symbol, sized by value, coloured by day P&L %
    "v_heatmap": """
SELECT oms_instance_id, symbol, sector, market_value AS value, day_pnl, day_pnl_pct, strategies
  FROM v_positions""",
    # closed trades per strategy and host: win rate, average R, P&L and the drawdown of the cumulative P&L
    "v_strategy_performance": """
WITH t AS (
    SELECT oms_instance_id, strategy_id, trade_id, exit_ts, pnl, r_multiple,
           sum(pnl) OVER w AS cum_pnl
      FROM trades
    WINDOW w AS (PARTITION BY oms_instance_id, strategy_id ORDER BY exit_ts, trade_id ROWS UNBOUNDED PRECEDING)
), d AS (
    SELECT *, GREATEST(max(cum_pnl) OVER w, 0) - cum_pnl AS drawdown
      FROM t
    WINDOW w AS (PARTITION BY oms_instance_id, strategy_id ORDER BY exit_ts, trade_id ROWS UNBOUNDED PRECEDING)
)
SELECT oms_instance_id,
       strategy_id,
       count(*) AS trades,
       count(*) FILTER (WHERE pnl > 0) AS wins,
       count(*) FILTER (WHERE pnl > 0) * 100.0 / count(*) AS win_rate_pct,
       avg(r_multiple) AS avg_r,
       count(r_multiple) AS trades_with_r,
       sum(pnl) AS total_pnl,
       avg(pnl) AS avg_pnl,
       max(drawdown) AS max_drawdown,
       min(exit_ts) AS first_exit,
       max(exit_ts) AS last_exit
  FROM d
 GROUP BY oms_instance_id, strategy_id""",
    # the strategies' heartbeats and pause switches
    "v_strategy_heartbeats": """
SELECT oms_instance_id,
       strategy_id,
       paused,
       last_heartbeat,
       EXTRACT(EPOCH FROM (now() - last_heartbeat)) AS heartbeat_age_sec,
       status_detail
  FROM strategy_state""",
    # reconciliation's log: drifts and failed cycles
    "v_recon_events": f"""
SELECT oms_instance_id,
       recon_id,
       ts,
       (ts AT TIME ZONE {KST})::date AS trading_day,
       kind,
       symbol,
       broker_qty,
       ledger_qty,
       broker_qty - ledger_qty AS drift_qty,
       detail,
       duration_ms
  FROM recon_log""",
    # each host's switches, reconciliation and frozen symbols
    "v_risk_state": """
SELECT s.oms_instance_id,
       s.safe_mode,
       s.halt_new_entries,
       s.flatten_in_progress,
       s.regime,
       jsonb_array_length(s.disabled_symbols) AS disabled_symbols,
       (SELECT count(*) FROM positions p WHERE p.oms_instance_id = s.oms_instance_id AND p.frozen) AS frozen_symbols,
       r.last_cycle_at,
       r.last_kind,
       (SELECT count(*) FROM recon_log d WHERE d.oms_instance_id = s.oms_instance_id
           AND d.ts > now() - interval '1 day') AS recon_events_24h,
       s.updated_at
  FROM oms_state s
  LEFT JOIN LATERAL (SELECT ts AS last_cycle_at, kind AS last_kind FROM recon_log l
                      WHERE l.oms_instance_id = s.oms_instance_id ORDER BY ts DESC LIMIT 1) r ON true""",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, source in _GENERATED.items():
        if dialect == "postgresql":
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN created_at TIMESTAMP WITH TIME ZONE "
                f"GENERATED ALWAYS AS ({source}) STORED"
            )
        else:  # SQLite adds only VIRTUAL generated columns to an existing table
            op.execute(f"ALTER TABLE {table} ADD COLUMN created_at DATETIME GENERATED ALWAYS AS ({source}) VIRTUAL")
    op.create_table(
        "symbol_marks",
        sa.Column("oms_instance_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("last_price", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sector", sa.String(), nullable=True),
        sa.Column("prev_close", sa.Double(), nullable=True),
        sa.Column("copied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("oms_instance_id", "symbol", name=op.f("pk_symbol_marks")),
    )
    if dialect != "postgresql":
        return
    for name, sql in VIEWS.items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql}")
    names = ", ".join(VIEWS)
    op.execute(
        f"""DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
    GRANT SELECT ON {names} TO {READER_ROLE};
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE};
  END IF;
END $$"""
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for name in reversed(list(VIEWS)):
            op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("symbol_marks")
    for table in _GENERATED:
        op.execute(f"ALTER TABLE {table} DROP COLUMN created_at")
