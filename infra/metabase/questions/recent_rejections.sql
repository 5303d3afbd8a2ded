-- The latest rejected or deferred intents with the OMS's reason.
SELECT received_at, oms_instance_id, strategy_id, symbol, intent_type, decision, reason_code, reason
  FROM v_intents
 WHERE decision IN ('REJECTED', 'DEFERRED')
 ORDER BY received_at DESC
 LIMIT 200
