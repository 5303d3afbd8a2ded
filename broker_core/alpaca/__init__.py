"""Alpaca adapter on alpaca-py (``adapter.AlpacaBroker``) and ``fake/``, an Alpaca-compatible server backed by
the US paper exchange so the real SDK is tested (specs/alpaca.md)."""

from broker_core.alpaca.settings import AlpacaConfigError, AlpacaSettings

__all__ = ["AlpacaBroker", "AlpacaConfigError", "AlpacaSettings"]


def __getattr__(name: str) -> object:
    if name == "AlpacaBroker":
        from broker_core.alpaca.adapter import AlpacaBroker

        return AlpacaBroker
    raise AttributeError(name)
