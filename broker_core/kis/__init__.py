"""KIS (한국투자증권) adapter: REST + WebSocket clients, the Broker protocol on top, and ``fake/``,
a protocol-faithful KIS server backed by the paper exchange (see specs/kis.md)."""

from broker_core.kis.settings import KisConfigError, KisCredentials, KisSettings

__all__ = ["KisBroker", "KisConfigError", "KisCredentials", "KisSettings"]


def __getattr__(name: str) -> object:
    if name == "KisBroker":
        from broker_core.kis.broker import KisBroker

        return KisBroker
    raise AttributeError(name)
