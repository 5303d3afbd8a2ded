-- What each host holds now: symbols, market value, unrealized and day P&L.
SELECT oms_instance_id,
       count(*) AS symbols,
       sum(market_value) AS market_value,
       sum(unrealized_pnl) AS unrealized_pnl,
       sum(day_pnl) AS day_pnl
  FROM v_positions
 GROUP BY oms_instance_id
 ORDER BY oms_instance_id
