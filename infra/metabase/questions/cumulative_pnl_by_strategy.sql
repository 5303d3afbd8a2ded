-- Cumulative realized P&L per strategy over the trading days (all hosts together).
SELECT trading_day, strategy_id,
       sum(sum(realized_pnl)) OVER (PARTITION BY strategy_id ORDER BY trading_day) AS cumulative_pnl
  FROM v_daily_pnl
 GROUP BY trading_day, strategy_id
 ORDER BY trading_day, strategy_id
