"""An async token-bucket rate limiter with priorities.

Waiters are served strictly by (priority, arrival): a market-data call never overtakes an order.
Time comes from an injectable ``monotonic`` function and the pump waits with an injectable async
``sleep`` (default ``asyncio.sleep``), so tests can drive a fake time without wall-clock waits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from enum import IntEnum

_FULL = 1.0 - 1e-9
"""A token counts as whole within float noise: refilling by ``(now - last) * rate`` after sleeping
exactly ``(1 - tokens) / rate`` may land at 0.9999999999999; waiting for the last 1e-16 would spin
(forever under a fake clock whose time cannot grow by less than one ulp)."""


class Priority(IntEnum):
    ORDER = 0
    RECONCILE = 1
    MARKET_DATA = 2


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        if self.capacity < 1:
            raise ValueError("burst must be >= 1 (a call needs one whole token)")
        self._tokens = self.capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._last = monotonic()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self.granted = 0

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now

    def try_acquire(self) -> bool:
        self._refill()
        while self._waiters and self._waiters[0][2].done():  # drop waiters cancelled while queued
            heapq.heappop(self._waiters)
        if not self._waiters and self._tokens >= _FULL:
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
            elif not fut.cancelled():
                # Granted, but the caller was cancelled before it resumed: give the token back.
                self._release()
            raise

    def _release(self) -> None:
        self._refill()
        self._tokens = min(self.capacity, self._tokens + 1)
        self.granted -= 1
        self._dispatch()
        if self._waiters and (self._pump is None or self._pump.done()):
            self._pump = asyncio.create_task(self._run())

    def _dispatch(self) -> None:
        """Grant queued waiters, best (priority, arrival) first, while whole tokens are available."""
        self._refill()
        while self._waiters:
            if self._waiters[0][2].done():  # cancelled while queued
                heapq.heappop(self._waiters)
                continue
            if self._tokens < _FULL:
                break
            _, _, fut = heapq.heappop(self._waiters)
            self._tokens -= 1
            self.granted += 1
            fut.set_result(None)

    async def _run(self) -> None:
        while True:
            self._dispatch()
            if not self._waiters:
                return
            # at least 1 µs: a datetime-based clock cannot advance by less, and would spin
            await self._sleep(max((1 - self._tokens) / self.rate, 1e-6))

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
