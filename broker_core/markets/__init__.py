"""Market rules per market (ticks, lots, sessions, currency). The KRX rules live in ``broker_core.market_rules``."""
