-- The strategies' heartbeats: when each last reported and whether it is paused.
SELECT oms_instance_id, strategy_id, paused, last_heartbeat, heartbeat_age_sec
  FROM v_strategy_heartbeats
 ORDER BY oms_instance_id, strategy_id
