-- Market value per sector and host, and its share of the host's gross exposure.
SELECT sector, oms_instance_id, symbols, market_value, unrealized_pnl, share_pct
  FROM v_exposure_by_sector
 ORDER BY market_value DESC
