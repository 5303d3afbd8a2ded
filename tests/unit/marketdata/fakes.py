"""In-process stand-ins for the hub's broker: subscription bookkeeping and a tick pipe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from broker_core.errors import SubscriptionCapacityExceeded
from broker_core.models import Tick


class TickPipe(AsyncIterator[Tick]):
    def __init__(self, owner: RecordingBroker) -> None:
        self.queue: asyncio.Queue[Tick | None] = asyncio.Queue()
        self.owner = owner
        self.closed = False

    def __aiter__(self) -> TickPipe:
        return self

    async def __anext__(self) -> Tick:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        self.closed = True
        if self in self.owner.pipes:
            self.owner.pipes.remove(self)


class RecordingBroker:
    """Counts subscriptions like a real session: over capacity is an error, never silently accepted."""

    name = "recording"

    def __init__(self, capacity: int = 40) -> None:
        self.subscription_capacity = capacity
        self.subscribed: set[str] = set()
        self.max_seen = 0
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.pipes: list[TickPipe] = []
        self.ticks_calls = 0
        self.muted = False

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        wanted = self.subscribed | set(symbols)
        if len(wanted) > self.subscription_capacity:
            raise SubscriptionCapacityExceeded(f"{len(wanted)} > {self.subscription_capacity}")
        self.calls.append(("subscribe", tuple(symbols)))
        self.subscribed = wanted
        self.max_seen = max(self.max_seen, len(self.subscribed))

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        self.calls.append(("unsubscribe", tuple(symbols)))
        self.subscribed -= set(symbols)

    def ticks(self) -> TickPipe:
        self.ticks_calls += 1
        pipe = TickPipe(self)
        self.pipes.append(pipe)
        return pipe

    def push(self, symbol: str, price: float, ts: datetime, qty: int = 1) -> None:
        """Deliver a print of a subscribed symbol to every open tick iterator (unless muted)."""
        if self.muted or symbol not in self.subscribed:
            return
        tick = Tick(symbol=symbol, ts=ts, price=price, qty=qty)
        for pipe in self.pipes:
            pipe.queue.put_nowait(tick)

    async def get_quote(self, symbol: str) -> Any:  # pragma: no cover - not used by the hub
        raise NotImplementedError
