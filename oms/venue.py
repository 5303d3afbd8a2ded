"""What the OMS needs from the broker wiring that the composition layer (``trader``) chose.

The OMS never picks or builds an adapter itself: ``trader`` builds a :class:`Venue` (paper exchange,
KIS, Alpaca) from the settings and hands the factory to the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from broker_core.broker import Broker
from broker_core.clock import Clock
from broker_core.markets.venue_market import KRX_MARKET, Market

if TYPE_CHECKING:
    from oms.settings import OmsConfig, OmsSettings


class ReferenceData(Protocol):
    """Daily reference data the market-data proxy serves besides the broker (investor flow, daily symbols)."""

    def daily_symbols(self) -> list[str]: ...

    def investor_flow(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]: ...


@dataclass
class Venue:
    broker: Broker
    exchange: Any = None
    """An in-process exchange whose ``run()`` the OMS schedules (the paper exchange), or None."""
    known_symbols: set[str] | None = None
    """Symbols the venue trades, when it knows them (paper); None means any symbol may be tried."""
    sector_of: dict[str, str] = field(default_factory=dict)
    reference: ReferenceData | None = None
    market: Market = KRX_MARKET
    """The account's market: its tick grid, sessions, calendar and time zone (KRX unless the venue says US)."""


VenueFactory = Callable[["OmsSettings", "OmsConfig", Clock], Venue]
