"""The equity and day-P&L curve of the built-in dashboard: samples of the account kept in memory.

The database holds fills and trades, not the equity between them; the dashboard's curve is sampled by the
OMS itself every ``interval_s`` clock seconds (and whenever the page asks) and starts again with each
trading day.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oms.runtime import OmsRuntime

log = logging.getLogger("oms.web.curve")


class EquityCurve:
    def __init__(self, interval_s: float = 15.0, max_points: int = 5000) -> None:
        self.interval_s = interval_s
        self.points: deque[tuple[float, float, float]] = deque(maxlen=max_points)
        """(UNIX seconds of the OMS clock, equity, day P&L)"""
        self.day: date | None = None
        self._last: datetime | None = None

    def sample(self, rt: OmsRuntime, *, force: bool = False) -> None:
        if rt.intents is None or not rt.state.ready:
            return
        now = rt.clock.now()
        day = rt.state.trading_day or now.date()
        if day != self.day:
            self.points.clear()
            self.day = day
            self._last = None
        if not force and self._last is not None and (now - self._last).total_seconds() < self.interval_s:
            return
        pv = rt.intents.portfolio()
        point = (now.timestamp(), float(pv.equity), float(pv.daily_pnl))
        if self.points and self.points[-1][0] >= point[0]:
            self.points[-1] = point
        else:
            self.points.append(point)
        self._last = now

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat() if self.day else None,
            "ts": [p[0] for p in self.points],
            "equity": [p[1] for p in self.points],
            "daily_pnl": [p[2] for p in self.points],
        }

    async def run(self, rt: OmsRuntime) -> None:
        """Sample until cancelled (started with the app)."""
        while True:
            try:
                self.sample(rt)
            except Exception:  # noqa: BLE001 - a missed sample only leaves a gap in the curve
                log.debug("equity sample failed", exc_info=True)
            await rt.clock.sleep(self.interval_s)
            await asyncio.sleep(0)
