"""The async ``Broker`` protocol every adapter (paper, KIS, Alpaca) implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from broker_core.models import Account, Bar, BrokerOrder, Fill, OrderRequest, OrderUpdate, Position, Quote, Tick


@runtime_checkable
class Broker(Protocol):
    name: str
    subscription_capacity: int
    """How many tick subscriptions the session can hold at once (KIS: 40)."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Submit; idempotent on ``client_order_id`` (a known id returns the existing order).

        Raises OrderRejected, RateLimited, BrokerUnavailable, AuthError or OutcomeUnknown.
        """
        ...

    async def cancel_order(self, client_order_id: str) -> BrokerOrder:
        """Request cancel of the rest; OrderRejected if the order is already final."""
        ...

    async def get_order(self, client_order_id: str) -> BrokerOrder | None: ...

    async def list_open_orders(self) -> list[BrokerOrder]: ...

    async def list_fills(self, since: datetime | None = None) -> list[Fill]:
        """Executions of the day (the polling safety net for the push stream)."""
        ...

    async def get_positions(self) -> list[Position]: ...

    async def get_account(self) -> Account: ...

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """Push stream of order changes and fills; each call returns a new subscriber iterator."""
        ...

    async def get_quote(self, symbol: str) -> Quote: ...

    async def get_bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[Bar]: ...

    async def get_daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]: ...

    async def subscribe_ticks(self, symbols: list[str]) -> None: ...

    async def unsubscribe_ticks(self, symbols: list[str]) -> None: ...

    def ticks(self) -> AsyncIterator[Tick]:
        """Trades of the subscribed symbols."""
        ...
