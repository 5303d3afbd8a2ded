-- Realized P&L per trading day, strategy and host (bars per strategy).
SELECT trading_day, strategy_id, oms_instance_id, realized_pnl, fills, trades
  FROM v_daily_pnl
 ORDER BY trading_day, strategy_id, oms_instance_id
