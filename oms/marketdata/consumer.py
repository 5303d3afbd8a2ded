"""One stream consumer (a ``/api/v1/stream`` connection): its order/fill events and its market feed.

:class:`StreamConsumer` is an :class:`~oms.core.events.Subscriber` (so the OMS core's
``publish_strategy`` reaches it unchanged) with a different market queue: one FIFO in arrival
order across symbols. Below ``max_market_backlog`` every market event is kept; at or above it a new
trade/quote replaces the newest still-queued event of the same (type, symbol) — latest wins — so a
lagging reader skips stale prints but the queue stays bounded (backlog + number of keys). Order,
fill and control events go to the unbounded critical queue, are never conflated and are served
first. Putting never blocks: a slow reader can never stall the upstream reader that feeds it.

Market items may be pre-encoded JSON text (the hub encodes each tick once for all consumers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from oms.core.events import Event, EventBus, Subscriber

MarketItem = Any
"""A market event: a dict, or its JSON text."""


@dataclass(eq=False)
class StreamConsumer(Subscriber):
    owner: str = ""
    """Lease owner (the strategy id; ``ADMIN``/``READ`` for tool keys)."""
    symbols: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=lambda: {"trades", "quotes"})
    max_market_backlog: int = 10_000
    conflated: int = 0
    wants: dict[str, frozenset[str]] = field(default_factory=dict)
    """Granted symbol → channels wanted on it."""
    _mq: deque[list[Any]] = field(default_factory=deque)
    _latest: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    received: int = 0
    """Market events offered to this consumer (before conflation)."""

    def put_market(self, event: Event) -> None:
        self.put_encoded((event["type"], event.get("symbol", "")), event)

    def put_encoded(self, key: tuple[str, str], item: MarketItem) -> None:
        self.received += 1
        if len(self._mq) >= self.max_market_backlog:
            entry = self._latest.get(key)
            if entry is not None:
                entry[1] = item
                self.conflated += 1
                return
        entry = [key, item]
        self._mq.append(entry)
        self._latest[key] = entry
        self._wake.set()

    @property
    def market_backlog(self) -> int:
        return len(self._mq)

    @property
    def critical_backlog(self) -> int:
        return self._critical.qsize()

    def get_nowait(self) -> Event | MarketItem | None:
        if not self._critical.empty():
            return self._critical.get_nowait()
        if self._mq:
            entry = self._mq.popleft()
            if self._latest.get(entry[0]) is entry:
                del self._latest[entry[0]]
            return entry[1]
        return None

    async def get(self) -> Event | MarketItem:
        """Next item: order/fill/control events first, then market events in arrival order."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            self._wake.clear()
            await self._wake.wait()


class StreamBus(EventBus):
    """The OMS event bus whose subscribers are :class:`StreamConsumer` s."""

    def __init__(self, market_backlog: int = 10_000) -> None:
        super().__init__()
        self.market_backlog = market_backlog

    def subscribe(self, strategy_id: str, owner: str | None = None) -> StreamConsumer:
        sub = StreamConsumer(
            strategy_id=strategy_id, owner=owner or strategy_id, max_market_backlog=self.market_backlog
        )
        self._subs.add(sub)
        return sub
