"""The backtest's progress bar: sessions done, virtual time, intents, fills, P&L, ETA.

A driver hook refreshes it at most every ``REFRESH_S`` wall seconds (reads only; the run is not touched).
The bar advances with virtual time through each session's trading hours."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from broker_core.clock import KST
from broker_core.market_rules import CLOSE, OPEN
from trader.backtest.driver import OnIdle
from trader.backtest.engine import LiveView

REFRESH_S = 0.25
PLAIN_EVERY_S = 30.0
"""Without a terminal (a log file, cron, CI) the bar is not drawn: one plain progress line this often instead."""


class BacktestProgress:
    def __init__(self, progress: Progress, task: TaskID, days: list[date]) -> None:
        self._progress = progress
        self._task = task
        self._days = days
        self._index = {d: i for i, d in enumerate(days)}
        self._last = 0.0
        self._equity0: float | None = None
        self._plain = not progress.console.is_terminal
        self._started = time.monotonic()
        self._last_line = self._started

    def hook(self, view: LiveView) -> OnIdle:
        def on_idle(now: datetime, _next: datetime | None) -> None:
            wall = time.monotonic()
            if wall - self._last >= REFRESH_S:
                self._last = wall
                self.update(view, now)

        return on_idle

    def update(self, view: LiveView, now: datetime) -> None:
        equity = view.equity()
        if self._equity0 is None:
            self._equity0 = equity
        status = (
            f"sessions {view.sessions_done}/{len(self._days)} · intents {view.intents():,} · "
            f"fills {view.fills():,} · P&L {equity - self._equity0:+,.0f} KRW"
        )
        done = self._done(now)
        self._progress.update(self._task, completed=done, now=f"{now.astimezone(KST):%Y-%m-%d %H:%M:%S}", status=status)
        self._progress.refresh()
        wall = time.monotonic()
        if self._plain and wall - self._last_line >= PLAIN_EVERY_S:
            self._last_line = wall
            self._progress.console.print(self.line(now, done, status, wall - self._started), highlight=False)

    def line(self, now: datetime, done: float, status: str, elapsed: float) -> str:
        total = len(self._days)
        eta = f"{elapsed / done * (total - done) / 60:.1f} min" if done > 0 else "?"
        return (
            f"{now.astimezone(KST):%Y-%m-%d %H:%M} · {done:.1f}/{total} sessions ({done / total:.0%}) · {status} · "
            f"elapsed {elapsed / 60:.1f} min · ETA {eta}"
        )

    def _done(self, now: datetime) -> float:
        local = now.astimezone(KST)
        day = local.date()
        i = self._index.get(day)
        if i is None:
            return float(sum(1 for d in self._days if d < day))
        open_, close = datetime.combine(day, OPEN, KST), datetime.combine(day, CLOSE, KST)
        part = (local - open_) / (close - open_)
        return i + min(1.0, max(0.0, part))

    def finish(self) -> None:
        self._progress.update(self._task, completed=len(self._days))
        self._progress.refresh()


@contextmanager
def progress_bar(console: Console, days: list[date]) -> Iterator[BacktestProgress]:
    columns = (
        TextColumn("[bold]{task.fields[now]}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, auto_refresh=False, transient=False) as bar:
        task = bar.add_task("backtest", total=len(days), now="", status="starting")
        yield BacktestProgress(bar, task, days)
