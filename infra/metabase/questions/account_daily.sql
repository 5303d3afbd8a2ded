-- Each host's account per trading day: start equity, realized P&L, the day's low and the loss halt.
SELECT trading_day, oms_instance_id, start_equity, realized_pnl, realized_pnl_pct, min_equity,
       max_intraday_drawdown_pct, halted, fills, intents, rejections
  FROM v_daily_pnl_account
 ORDER BY trading_day DESC, oms_instance_id
