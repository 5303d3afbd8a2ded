-- Intent received to first fill, per trading day and strategy (seconds): median, 90th percentile, worst.
SELECT trading_day, strategy_id,
       count(*) AS orders_filled,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY first_fill_latency_sec) AS p50_sec,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY first_fill_latency_sec) AS p90_sec,
       max(first_fill_latency_sec) AS max_sec
  FROM v_fills
 WHERE is_first_fill AND first_fill_latency_sec IS NOT NULL
 GROUP BY trading_day, strategy_id
 ORDER BY trading_day, strategy_id
