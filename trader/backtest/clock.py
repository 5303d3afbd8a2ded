"""The backtest's clock: time stands still until the driver moves it to the next sleeper's instant.

Every component of a backtest (paper exchange, OMS, strategies) shares one :class:`DrivenClock`. It
reads like any :class:`~broker_core.clock.Clock`; a coroutine that sleeps on it is parked as a
*sleeper* until :meth:`DrivenClock.advance_to` reaches its instant. Only the driver
(:mod:`trader.backtest.driver`) calls ``advance_to``, and only when the event loop is idle, so
nothing ever misses an instant and the run does not depend on how fast the machine is.

Why not :class:`~broker_core.clock.ManualClock`: the paper exchange *sets* a ManualClock to each
print's time itself (a replay's feed drives a test's time), which would let the tape run ahead of
the strategies. On this clock the exchange is one sleeper among others (``sleep_until`` the next
print), so the driver is the only thing that moves time.

Multi-day runs take the same ``Windows`` as ``trader sim``'s virtual clock: time runs through each
trading day's window and jumps from a window's end to the next one's start; a sleeper whose instant
falls in the gap wakes at the jump, in the order of the instants asked for, never dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from broker_core.clock import KST, Windows, _Timeline


class DrivenClock:
    """A clock moved only by :meth:`advance_to`; its sleepers are visible to the driver."""

    speed = math.inf

    def __init__(self, start: datetime, *, windows: Windows | None = None, tz: ZoneInfo = KST) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("DrivenClock needs a timezone-aware start")
        self.windows = windows
        self._tz = tz
        self._timeline = _Timeline(start.astimezone(UTC), windows.spans()) if windows is not None else None
        self._now = start.astimezone(tz)
        self._now_ts = start.timestamp()
        self._sleepers: list[tuple[float, float, int, asyncio.Future[None], datetime]] = []
        """Heap of (UNIX time it wakes at, UNIX time asked for, sequence, future, instant it wakes at)."""
        self._seq = 0

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: datetime) -> None:
        asked = when.timestamp()
        if asked <= self._now_ts:
            return
        wake_at = self._effective(when)
        wake = wake_at.timestamp()
        if wake <= self._now_ts:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (wake, asked, self._seq, future, wake_at))
        await future

    def _effective(self, when: datetime) -> datetime:
        """The instant a sleeper for ``when`` wakes: ``when``, or the next window's start when it lies in a gap."""
        if self._timeline is None:
            return when
        timeline = self._timeline
        return timeline.instant(timeline.elapsed(when.astimezone(UTC)))

    # ---- the driver's side ------------------------------------------------------------------------
    def next_wake(self) -> datetime | None:
        """The instant of the earliest sleeper still waiting, or None when nobody sleeps."""
        heap = self._sleepers
        while heap and heap[0][3].done():  # its task was cancelled
            heapq.heappop(heap)
        return heap[0][4] if heap else None

    @property
    def sleepers(self) -> int:
        return sum(1 for s in self._sleepers if not s[3].done())

    def advance_to(self, when: datetime) -> int:
        """Move time forward to ``when`` and wake every sleeper due by then, earliest first (ties in the
        order they went to sleep). Returns how many woke. Time never goes back."""
        when_ts = when.timestamp()
        if when_ts > self._now_ts:
            self._now_ts = when_ts
            self._now = when.astimezone(self._tz)
        heap = self._sleepers
        woken = 0
        while heap and heap[0][0] <= self._now_ts:
            future = heapq.heappop(heap)[3]
            if not future.done():
                future.set_result(None)
                woken += 1
        return woken
