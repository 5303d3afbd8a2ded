-- Every held symbol: quantity, cost, mark, market value, unrealized and day P&L, allocations.
SELECT oms_instance_id, symbol, sector, qty, avg_price, last_price, market_value, unrealized_pnl, day_pnl,
       day_pnl_pct, strategies, frozen, marked_at
  FROM v_positions
 ORDER BY oms_instance_id, market_value DESC
