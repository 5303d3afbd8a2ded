-- The day's loss against the start equity, per host (the OMS halts entries at daily_loss_halt_pct).
SELECT trading_day, oms_instance_id, realized_pnl_pct, max_intraday_drawdown_pct, halted
  FROM v_daily_pnl_account
 ORDER BY trading_day DESC, oms_instance_id
