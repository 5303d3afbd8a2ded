"""Per-strategy event fan-out for ``/api/v1/stream``: order and fill events never drop.

Each subscriber has its own unbounded queue for order/fill events; market events (trade, quote)
go to a bounded queue where, when a consumer lags, the newest replaces the oldest of the same
symbol and kind ("latest wins") so a slow reader never stalls the publisher.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass(eq=False)
class Subscriber:
    strategy_id: str
    symbols: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=lambda: {"trades", "quotes"})
    max_market_backlog: int = 10_000
    _critical: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    _market: OrderedDict[tuple[str, str], list[Event]] = field(default_factory=OrderedDict)
    _market_count: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    conflated: int = 0

    def put_critical(self, event: Event) -> None:
        self._critical.put_nowait(event)
        self._wake.set()

    def put_market(self, event: Event) -> None:
        key = (event["type"], event.get("symbol", ""))
        bucket = self._market.setdefault(key, [])
        if self._market_count >= self.max_market_backlog and bucket:
            bucket[-1] = event
            self.conflated += 1
        else:
            bucket.append(event)
            self._market_count += 1
        self._wake.set()

    async def get(self) -> Event:
        """Next event: order/fill events first, then market events in arrival order per key."""
        while True:
            if not self._critical.empty():
                return self._critical.get_nowait()
            if self._market:
                key, bucket = next(iter(self._market.items()))
                event = bucket.pop(0)
                self._market_count -= 1
                if not bucket:
                    del self._market[key]
                return event
            self._wake.clear()
            await self._wake.wait()


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

    def publish_market(self, symbol: str, channel: str, event: Event) -> None:
        for sub in self._subs:
            if symbol in sub.symbols and channel in sub.channels:
                sub.put_market(event)

    def wanted_symbols(self) -> set[str]:
        out: set[str] = set()
        for sub in self._subs:
            out |= sub.symbols
        return out
