"""The shared kernel: domain models and enums, the OMS API contract (``contract/``: wire models, reason
codes), the Broker protocol, errors, clock, calendars, market rules, config-error and logging helpers,
and the adapters (paper exchange, KIS). It imports nothing from ``oms``, ``strategies`` or ``trader``."""
