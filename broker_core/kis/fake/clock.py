"""A manual clock whose sleepers are visible, so a test can jump time to the next deadline.

The fake KIS server's limits ("one token a minute", "2 requests a second") are judged on the fake's
clock. Sharing a ``SteppingClock`` between the fake and the adapter (its rate limiter and its token
waits sleep on it) lets a test advance time exactly when the adapter waits, with no wall-clock sleep
and no timing assumption.
"""

from __future__ import annotations

from datetime import datetime

from broker_core.clock import ManualClock


class SteppingClock(ManualClock):
    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._deadlines: list[datetime] = []

    async def sleep_until(self, when: datetime) -> None:
        self._deadlines.append(when)
        try:
            await super().sleep_until(when)
        finally:
            self._deadlines.remove(when)

    @property
    def waiting(self) -> int:
        """How many coroutines are sleeping on this clock."""
        return len(self._deadlines)

    def next_deadline(self) -> datetime | None:
        return min(self._deadlines) if self._deadlines else None

    def step(self) -> bool:
        """Jump to the earliest sleeper's deadline (False when nobody sleeps)."""
        nxt = self.next_deadline()
        if nxt is None:
            return False
        self.set(nxt)
        return True
