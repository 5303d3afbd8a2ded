-- Intents per trading day and strategy: how many succeeded, were rejected or deferred, and the rates.
SELECT trading_day, strategy_id,
       count(*) AS intents,
       count(*) FILTER (WHERE succeeded) AS succeeded,
       count(*) FILTER (WHERE rejected) AS rejected,
       count(*) FILTER (WHERE decision = 'DEFERRED') AS deferred,
       round(count(*) FILTER (WHERE succeeded) * 100.0 / count(*), 1) AS success_rate_pct,
       round(count(*) FILTER (WHERE rejected) * 100.0 / count(*), 1) AS rejection_rate_pct
  FROM v_intents
 GROUP BY trading_day, strategy_id
 ORDER BY trading_day, strategy_id
