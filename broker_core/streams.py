"""Fan-out of a broker adapter's pushed events: each ``order_updates()``/``ticks()`` call gets its own queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_END = object()


class FanoutStream(AsyncIterator[T], Generic[T]):
    """One consumer's queue, registered in ``owner`` (the adapter offers every event to each registered stream).

    ``maxsize`` bounds the queue by dropping the oldest event (ticks); 0 keeps everything (order updates).
    ``end()`` finishes the iteration after what is queued; ``aclose()`` unregisters at once."""

    def __init__(self, owner: list[FanoutStream[Any]], maxsize: int = 0) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._owner = owner
        self._closed = False
        owner.append(self)

    def offer(self, item: Any) -> None:
        if self.queue.maxsize and self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(item)

    def __aiter__(self) -> FanoutStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        item = await self.queue.get()
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self in self._owner:
                self._owner.remove(self)

    def end(self) -> None:
        self.offer(_END)
