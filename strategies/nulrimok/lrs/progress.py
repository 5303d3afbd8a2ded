"""Progress of an LRS fill: a rich progress bar (symbols done, ETA) on a terminal, log lines elsewhere.

``style``: ``rich`` / ``log`` / ``off``, or ``auto`` = rich when stderr is a terminal, else a log line at
every 10% (a container log should not fill with redraws). :attr:`FillProgress.snapshot` is what the
strategy's status shows while a fill runs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class FillProgress:
    def __init__(self, total: int, label: str, style: str = "auto", logger: logging.Logger | None = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.log = logger or logging.getLogger("strategies.nulrimok.lrs")
        self._started = time.monotonic()
        self._next_log = 0.1
        console = Console(stderr=True)
        if style == "auto":
            style = "rich" if console.is_terminal else "log"
        self.style = style
        self._rich: Progress | None = None
        self._task: TaskID | None = None
        if style == "rich" and total > 0:
            self._rich = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("symbols"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self._task = self._rich.add_task(label, total=total)
            self._rich.start()
        elif style == "log" and total > 0:
            self.log.info("%s: %d symbols to fetch", label, total)

    def eta_seconds(self) -> float | None:
        if self.done == 0:
            return None
        rate = (time.monotonic() - self._started) / self.done
        return rate * (self.total - self.done)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, completed=self.done)
        elif self.style == "log" and self.total and self.done / self.total >= self._next_log:
            eta = self.eta_seconds()
            self.log.info(
                "%s: %d/%d symbols (%.0f%%), ETA %s",
                self.label,
                self.done,
                self.total,
                100 * self.done / self.total,
                f"{eta:.0f}s" if eta is not None else "?",
            )
            while self._next_log <= self.done / self.total:
                self._next_log += 0.1

    def stop(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    @property
    def snapshot(self) -> dict[str, Any]:
        eta = self.eta_seconds()
        return {
            "label": self.label,
            "done": self.done,
            "total": self.total,
            "elapsed_s": round(time.monotonic() - self._started, 1),
            "eta_s": round(eta, 1) if eta is not None else None,
        }
