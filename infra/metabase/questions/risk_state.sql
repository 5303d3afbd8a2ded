-- Each host's switches: safe mode, halts, frozen symbols and reconciliation's last word.
SELECT oms_instance_id, safe_mode, halt_new_entries, flatten_in_progress, regime, frozen_symbols,
       disabled_symbols, last_cycle_at, last_kind, recon_events_24h, updated_at
  FROM v_risk_state
 ORDER BY oms_instance_id
