"""The equity curve of a backtest, sampled on a fixed grid of session instants without touching the run.

The sampler is a driver hook (:data:`trader.backtest.driver.OnIdle`): it is called when the loop is idle
at ``now`` and time is about to jump to ``next``. Nothing can change between the two, so the value read
now is the value at every grid instant in ``[now, next)`` — the curve needs no sleeper of its own and
does not change the run's sequence of steps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime

from broker_core.clock import KST
from broker_core.market_rules import CLOSE, OPEN

SAMPLE_EVERY = timedelta(minutes=5)


class EquitySampler:
    def __init__(
        self,
        equity: Callable[[], float],
        days: list[date],
        every: timedelta = SAMPLE_EVERY,
        open_: dtime = OPEN,
        close: dtime = CLOSE,
    ) -> None:
        self._equity = equity
        grid: list[datetime] = []
        for day in days:
            t, end = datetime.combine(day, open_, KST), datetime.combine(day, close, KST)
            while t < end:
                grid.append(t)
                t += every
            grid.append(end)
        self._grid = grid
        self._closes = {datetime.combine(d, close, KST) for d in days}
        self._i = 0
        self.samples: list[tuple[datetime, float]] = []
        """(instant, equity) on the grid: every ``every`` from the open, and the close, of each session."""
        self.daily: list[tuple[str, float]] = []
        """(session, equity at its close)."""

    def __call__(self, now: datetime, nxt: datetime | None) -> None:
        grid, i = self._grid, self._i
        if i >= len(grid) or (nxt is not None and grid[i] >= nxt) or (nxt is None and grid[i] > now):
            return
        value = round(self._equity(), 2)
        while i < len(grid) and (grid[i] < nxt if nxt is not None else grid[i] <= now):
            self.samples.append((grid[i], value))
            if grid[i] in self._closes:
                self.daily.append((grid[i].date().isoformat(), value))
            i += 1
        self._i = i
