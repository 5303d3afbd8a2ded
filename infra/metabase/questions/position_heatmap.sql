-- The heat map: one row per held symbol, sized by value, coloured by the day's P&L %.
SELECT sector, symbol, oms_instance_id, value, day_pnl, day_pnl_pct, strategies
  FROM v_heatmap
 ORDER BY sector, value DESC
