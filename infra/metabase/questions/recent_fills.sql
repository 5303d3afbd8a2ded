-- The latest fills with their latency and slippage.
SELECT filled_at, oms_instance_id, strategy_id, symbol, side, qty, price, latency_sec, first_fill_latency_sec,
       slippage_bps
  FROM v_fills
 ORDER BY filled_at DESC
 LIMIT 200
