"""An async token-bucket rate limiter with priorities.

Waiters are served strictly by (priority, arrival): a market-data call never overtakes an order.
Time comes from an injectable monotonic function so tests can drive it.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from enum import IntEnum


class Priority(IntEnum):
    ORDER = 0
    RECONCILE = 1
    MARKET_DATA = 2


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._monotonic = monotonic
        self._last = monotonic()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self.granted = 0

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_acquire(self) -> bool:
        self._refill()
        if not self._waiters and self._tokens >= 1:
            self._tokens -= 1
            self.granted += 1
            return True
        return False

    async def acquire(self, priority: int = Priority.MARKET_DATA) -> None:
        if self.try_acquire():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._seq), fut))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done():
                fut.cancel()
            raise

    async def _run(self) -> None:
        while self._waiters:
            self._refill()
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)
            if not self._waiters:
                break
            if self._tokens >= 1:
                _, _, fut = heapq.heappop(self._waiters)
                self._tokens -= 1
                self.granted += 1
                fut.set_result(None)
                continue
            await asyncio.sleep((1 - self._tokens) / self.rate)

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
