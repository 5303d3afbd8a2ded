"""The only thing that moves a backtest's time: run the event loop until it is idle, then jump the
:class:`~trader.backtest.clock.DrivenClock` to its earliest sleeper, and again.

*Idle* means every task is blocked on the clock or on a future nobody will complete before time
moves: the loop has no ready callback left and no timer already due. The driver finds out by
yielding (``asyncio.sleep(0)`` puts it at the back of the ready queue) and looking at the loop's
ready queue when it runs again. This relies on two things the backtest composition guarantees:

- no work runs in other threads while time is driven: :class:`InlineExecutor` is the loop's default
  executor, so ``asyncio.to_thread``/``run_in_executor`` (the journal's reads) run inline, and the
  OMS reads from its journal alone (no database driver thread);
- nothing on the trading path waits on real time (asyncio timers): the exchange, the OMS's loops, the
  strategies' schedulers, the rate limiter and the SDK's retries all sleep on the clock.

What could still block on a thread (the journal drain's database copy, set to run at the end) does
not change a decision, so it may run whenever it likes. When the loop is idle and no sleeper is due
before the driver's ``limit``, the driver waits a millisecond of real time before looking again.

The standard asyncio event loop is required (its ``_ready`` queue is read; uvloop has none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from trader.backtest.clock import DrivenClock

T = TypeVar("T")
IDLE_POLL_S = 0.001

OnIdle = Callable[[datetime, datetime | None], None]
"""Called when the loop is idle at ``now`` and time is about to move to ``next`` (None: nothing sleeps)."""


class InlineExecutor(ThreadPoolExecutor):
    """Runs every submitted call at once, in the calling thread: the backtest's default executor (a
    ``ThreadPoolExecutor`` only because asyncio insists on one; it never starts a thread)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future


class Driver:
    def __init__(self, clock: DrivenClock, *, on_idle: Iterable[OnIdle] = ()) -> None:
        self.clock = clock
        self.limit: datetime | None = None
        """Time does not move past this instant (None: no bound)."""
        self.steps = 0
        self._on_idle = list(on_idle)
        self._task: asyncio.Task[None] | None = None
        self._at_limit = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if not hasattr(self._loop, "_ready") or not hasattr(self._loop, "_scheduled"):
            raise RuntimeError(
                f"the backtest needs the standard asyncio event loop, not {type(self._loop).__name__} "
                "(it reads the loop's ready queue to know when every task waits on the clock)"
            )
        self._ready: Any = getattr(self._loop, "_ready")  # noqa: B009 - private: see the module docstring
        self._scheduled: list[Any] = getattr(self._loop, "_scheduled")  # noqa: B009

    def add_hook(self, hook: OnIdle) -> None:
        self._on_idle.append(hook)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="backtest-driver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run_until(self, when: datetime) -> None:
        """Let time run up to ``when`` (the clock reads ``when`` when this returns, all work at it done)."""
        self.limit = when
        self._at_limit.clear()
        self.start()
        await self._at_limit.wait()
        if self._task is not None and self._task.done():
            self._task.result()  # the driver failed: raise its error here

    def release(self) -> None:
        """No bound any more: time runs on while the caller waits for something (e.g. strategies stopping)."""
        self.limit = None
        self.start()

    def freeze(self) -> None:
        """Time stands still from now on (the driver keeps watching; :meth:`release` lets time run again)."""
        self.limit = self.clock.now()

    async def settle(self) -> None:
        """Return once the loop is idle (see the module docstring)."""
        ready, scheduled, loop = self._ready, self._scheduled, self._loop
        while True:
            await asyncio.sleep(0)
            if not ready and not (scheduled and scheduled[0].when() <= loop.time()):
                return

    async def _run(self) -> None:
        clock = self.clock
        try:
            while True:
                await self.settle()
                now = clock.now()
                nxt = clock.next_wake()
                limit = self.limit
                if limit is not None and (nxt is None or nxt > limit):
                    nxt = limit if now < limit else None
                for hook in self._on_idle:
                    hook(now, nxt)
                if nxt is not None:
                    clock.advance_to(nxt)
                    self.steps += 1
                    continue
                if limit is not None:
                    self._at_limit.set()
                await asyncio.sleep(IDLE_POLL_S)  # nothing to do before the limit (or nobody sleeps)
        except BaseException:
            self._at_limit.set()
            raise
