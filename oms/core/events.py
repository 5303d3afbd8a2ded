"""Per-strategy event fan-out for ``/api/v1/stream``: order and fill events never drop.

Each subscriber has its own unbounded queue for order/fill events. Market events (trades, quotes)
are the market-data hub's: its consumers (``oms.marketdata.consumer``) add a bounded market queue.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass(eq=False)
class Subscriber:
    strategy_id: str
    _critical: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put_critical(self, event: Event) -> None:
        self._critical.put_nowait(event)
        self._wake.set()

    async def get(self) -> Any:
        """Next order/fill event."""
        while self._critical.empty():
            self._wake.clear()
            await self._wake.wait()
        return self._critical.get_nowait()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()

    def subscribe(self, strategy_id: str) -> Subscriber:
        sub = Subscriber(strategy_id=strategy_id)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> list[Subscriber]:
        return list(self._subs)

    def publish_strategy(self, strategy_id: str, event: Event) -> None:
        """Order/fill event for one strategy (admins listening with ``*`` get all)."""
        for sub in self._subs:
            if sub.strategy_id == strategy_id or sub.strategy_id == "*":
                sub.put_critical(event)
