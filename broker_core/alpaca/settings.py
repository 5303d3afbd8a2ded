"""Alpaca adapter settings (specs/alpaca.md §1).

Credentials are read from environment variables whose *names* are configured (``accounts.yaml`` names
them per account; ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY`` by default); they never appear in a repr.
The other settings are read with a prefix (``ALPACA_`` by default):

=================================  ==================================================================
``<prefix>PAPER``                  ``true`` (default) trades the paper account, ``false`` the live one
``<prefix>BASE_URL``               trading REST base, scheme and host only (default: Alpaca's paper/live host)
``<prefix>DATA_URL``               market-data REST base (default ``https://data.alpaca.markets``)
``<prefix>STREAM_URL``             full ws URL of ``trade_updates`` (default: Alpaca's; from BASE_URL + ``/stream``
                                   when only BASE_URL is set)
``<prefix>DATA_STREAM_URL``        full ws URL of the market-data stream (default: Alpaca's; from DATA_URL +
                                   ``/v2/<feed>`` when only DATA_URL is set)
``<prefix>DATA_FEED``              ``iex`` (default) or ``sip``
``<prefix>REQUEST_TIMEOUT_S``      our deadline on every REST call (default 10; alpaca-py has none)
``<prefix>ORDER_LOOKUP_WINDOW_S``  how long a submit whose outcome is unknown is looked up by client order id
                                   before OutcomeUnknown is raised (default 10)
``<prefix>FILL_POLL_S``            interval of the fills safety-net poll (default 5)
``<prefix>FRACTIONAL``             accept fractional MARKET quantities (default false)
``<prefix>EXTENDED_HOURS``         accept orders in pre-market / after-hours (default false)
``<prefix>SUBSCRIPTIONS``          symbols the market-data stream may hold (default 30, the IEX free plan)
=================================  ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"
DATA_STREAM_BASE = "wss://stream.data.alpaca.markets/v2/"
FEEDS = ("iex", "sip")


class AlpacaConfigError(ValueError):
    """An Alpaca setting is missing or malformed; the message names the environment variable."""


def mask(value: str) -> str:
    return f"{value[:2]}***" if len(value) > 6 else "***"


def _ws_from(http_url: str, path: str) -> str:
    parts = urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class AlpacaSettings:
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    paper: bool = True
    base_url: str = ""
    data_url: str = ""
    stream_url: str = ""
    data_stream_url: str = ""
    data_feed: str = "iex"
    request_timeout_s: float = 10.0
    order_lookup_window_s: float = 10.0
    order_lookup_backoff_s: float = 0.25
    """First pause between lookups of an unknown submit (doubles each time, within the window)."""
    fill_poll_s: float = 5.0
    fractional: bool = False
    extended_hours: bool = False
    subscription_capacity: int = 30
    key_env: str = "ALPACA_API_KEY"
    """Where the key came from (shown instead of the key)."""

    def __post_init__(self) -> None:
        if not self.api_key or not self.secret_key:
            raise AlpacaConfigError("the API key and secret are both required")
        if self.data_feed not in FEEDS:
            raise AlpacaConfigError(f"data feed must be one of {FEEDS}, got {self.data_feed!r}")
        for name in ("request_timeout_s", "fill_poll_s", "order_lookup_backoff_s"):
            if not getattr(self, name) > 0:
                raise AlpacaConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.order_lookup_window_s <= 600:
            raise AlpacaConfigError(f"order lookup window must be 0..600 s, got {self.order_lookup_window_s}")
        if not 1 <= self.subscription_capacity <= 10_000:
            raise AlpacaConfigError(f"subscription capacity must be 1..10000, got {self.subscription_capacity}")
        base = (self.base_url or (PAPER_URL if self.paper else LIVE_URL)).rstrip("/")
        data = (self.data_url or DATA_URL).rstrip("/")
        stream = self.stream_url or (
            _ws_from(base, "/stream") if self.base_url else (PAPER_STREAM_URL if self.paper else LIVE_STREAM_URL)
        )
        data_stream = self.data_stream_url or (
            _ws_from(data, f"/v2/{self.data_feed}") if self.data_url else DATA_STREAM_BASE + self.data_feed
        )
        object.__setattr__(self, "base_url", base)
        object.__setattr__(self, "data_url", data)
        object.__setattr__(self, "stream_url", stream)
        object.__setattr__(self, "data_stream_url", data_stream)

    def __repr__(self) -> str:
        return (
            f"AlpacaSettings(key={self.key_env}:{mask(self.api_key)}, paper={self.paper}, base_url={self.base_url!r}, "
            f"data_url={self.data_url!r}, stream_url={self.stream_url!r}, data_stream_url={self.data_stream_url!r})"
        )

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        key_env: str = "ALPACA_API_KEY",
        secret_env: str = "ALPACA_SECRET_KEY",
        prefix: str = "ALPACA_",
    ) -> AlpacaSettings:
        e = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return (e.get(name) or default).strip()

        key, secret = get(key_env), get(secret_env)
        for name, value in ((key_env, key), (secret_env, secret)):
            if not value:
                raise AlpacaConfigError(f"{name}: not set (the Alpaca credentials are read from it)")

        def flag(name: str, default: str) -> bool:
            raw = get(prefix + name, default).lower()
            if raw not in ("1", "0", "true", "false", "yes", "no"):
                raise AlpacaConfigError(f"{prefix}{name}: expected true/false, got {raw!r}")
            return raw in ("1", "true", "yes")

        def number(name: str, default: str) -> float:
            raw = get(prefix + name, default)
            try:
                return float(raw)
            except ValueError as exc:
                raise AlpacaConfigError(f"{prefix}{name}: not a number: {raw!r}") from exc

        try:
            return cls(
                api_key=key,
                secret_key=secret,
                paper=flag("PAPER", "true"),
                base_url=get(prefix + "BASE_URL"),
                data_url=get(prefix + "DATA_URL"),
                stream_url=get(prefix + "STREAM_URL"),
                data_stream_url=get(prefix + "DATA_STREAM_URL"),
                data_feed=get(prefix + "DATA_FEED", "iex").lower(),
                request_timeout_s=number("REQUEST_TIMEOUT_S", "10"),
                order_lookup_window_s=number("ORDER_LOOKUP_WINDOW_S", "10"),
                fill_poll_s=number("FILL_POLL_S", "5"),
                fractional=flag("FRACTIONAL", "false"),
                extended_hours=flag("EXTENDED_HOURS", "false"),
                subscription_capacity=int(number("SUBSCRIPTIONS", "30")),
                key_env=key_env,
            )
        except AlpacaConfigError as exc:
            raise AlpacaConfigError(f"Alpaca settings ({key_env} / {prefix}*): {exc}") from exc


__all__ = ["AlpacaConfigError", "AlpacaSettings", "mask"]
