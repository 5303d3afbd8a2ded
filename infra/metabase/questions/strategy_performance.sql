-- Closed trades per strategy and host: win rate, average R, P&L, drawdown of the cumulative P&L.
SELECT strategy_id, oms_instance_id, trades, wins, win_rate_pct, avg_r, total_pnl, avg_pnl, max_drawdown, last_exit
  FROM v_strategy_performance
 ORDER BY total_pnl DESC
