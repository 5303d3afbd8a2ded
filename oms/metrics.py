"""Prometheus metrics of one OMS instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class OmsMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.intents = Counter(
            "oms_intents", "Intents decided, by strategy and status", ["strategy", "status"], registry=r
        )
        self.intent_latency = Histogram(
            "oms_intent_latency_seconds",
            "Intent processing time (receive to reply)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "oms_intent_rejections", "Rejected/deferred intents by reason code", ["reason"], registry=r
        )
        self.orders = Counter("oms_orders", "Orders created, by strategy", ["strategy"], registry=r)
        self.fills = Counter("oms_fills", "Fills applied, by strategy", ["strategy"], registry=r)
        self.duplicate_fills = Counter("oms_duplicate_fills", "Fills seen again and ignored", registry=r)
        self.open_orders = Gauge("oms_open_orders", "Working orders", registry=r)
        self.journal_backlog = Gauge("oms_journal_backlog", "Journal rows not yet copied to the database", registry=r)
        self.db_ok = Gauge("oms_database_up", "1 when the last copy to the database succeeded", registry=r)
        self.journal_quarantined = Gauge(
            "oms_journal_quarantined_rows",
            "Journal rows the database refused, kept in journal_rejects instead of blocking the drain",
            registry=r,
        )
        self.recon_duration = Histogram("oms_reconcile_duration_seconds", "Reconciliation cycle duration", registry=r)
        self.recon_drift = Counter(
            "oms_reconcile_drift", "Drifts found by reconciliation, by kind", ["kind"], registry=r
        )
        self.recon_failures = Counter("oms_reconcile_failures", "Failed reconciliation cycles", registry=r)
        self.breaker = Gauge(
            "oms_circuit_breaker_state", "Broker circuit breaker: 0 CLOSED, 1 HALF_OPEN, 2 OPEN", registry=r
        )
        self.positions = Gauge("oms_positions", "Symbols with a non-zero position", registry=r)
        # risk state (alert rules in infra/prometheus/alerts.yml)
        self.recon_status = Gauge("oms_reconcile_status", "Reconciliation status: 0 OK, 1 WARN, 2 FAIL", registry=r)
        self.frozen_symbols = Gauge(
            "oms_frozen_symbols", "Symbols frozen for entries by an unexplained reconciliation drift", registry=r
        )
        self.safe_mode = Gauge("oms_safe_mode", "1 while safe mode blocks entries", registry=r)
        self.halt_new_entries = Gauge("oms_halt_new_entries", "1 while new entries are halted by an admin", registry=r)
        self.day_loss_halted = Gauge(
            "oms_day_loss_halted", "1 once the day's loss reached daily_loss_halt_pct (until the next day)", registry=r
        )
        self.heartbeat_age = Gauge(
            "oms_strategy_heartbeat_age_seconds",
            "Clock seconds since the strategy's last heartbeat",
            ["strategy"],
            registry=r,
        )
        # background loops (oms/supervisor.py)
        self.loop_restarts = Counter(
            "oms_loop_restarts",
            "Restarts of a supervised background loop after it failed or ended",
            ["loop"],
            registry=r,
        )
        self.loop_healthy = Gauge(
            "oms_loop_healthy",
            "1 when the background loop runs and makes progress, 0 when restarting/lagging/stopped",
            ["loop"],
            registry=r,
        )
        self.day_rollovers = Counter("oms_day_rollovers", "Trading-day rollovers of the running OMS", registry=r)
        # market data (oms/marketdata)
        self.md_slot_events = Counter(
            "oms_marketdata_slot_events",
            "Slot lease decisions: event grant/deny/evict/expire/release, by reason and strategy",
            ["event", "reason", "strategy"],
            registry=r,
        )
        self.md_slots_used = Gauge("oms_marketdata_slots_used", "Subscription slots in use", registry=r)
        self.md_slot_capacity = Gauge(
            "oms_marketdata_slot_capacity", "Subscription slot budget of the account", registry=r
        )
        self.md_consumers = Gauge("oms_marketdata_stream_consumers", "Open stream consumers", registry=r)
        self.md_ticks = Counter("oms_marketdata_ticks", "Trades read from the broker feed", registry=r)
        self.md_fanout = Counter("oms_marketdata_fanout", "Market events offered to stream consumers", registry=r)
        self.md_conflated = Counter(
            "oms_marketdata_conflated",
            "Market events replaced by a newer one for a lagging consumer (latest wins)",
            registry=r,
        )
        self.md_reconnects = Counter(
            "oms_marketdata_upstream_reconnects", "Upstream feed reconnects, by reason", ["reason"], registry=r
        )
        self.md_rest = Counter(
            "oms_marketdata_rest_requests",
            "REST market-data requests by kind and result (upstream/cache/shared/error)",
            ["kind", "result"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
