-- Slippage against the decision price (the intent's entry price, else the limit) in basis points.
SELECT trading_day, strategy_id, side,
       count(*) AS fills,
       avg(slippage_bps) AS avg_slippage_bps,
       sum(notional) AS notional
  FROM v_fills
 WHERE slippage_bps IS NOT NULL
 GROUP BY trading_day, strategy_id, side
 ORDER BY trading_day, strategy_id, side
