-- Why intents were rejected or deferred: counts per reason code and strategy.
SELECT COALESCE(reason_code, decision) AS reason, strategy_id, count(*) AS intents
  FROM v_intents
 WHERE decision IN ('REJECTED', 'DEFERRED')
 GROUP BY 1, 2
 ORDER BY intents DESC, reason, strategy_id
