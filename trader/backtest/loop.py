"""The backtest's event loop: the standard asyncio loop, minus a system call per turn.

A driven backtest keeps the loop's ready queue busy from its start to its end (every print, every
clock step, every strategy job is a callback), so each turn polls the selector with a zero timeout:
one ``epoll_wait`` that finds nothing, ≈ 6 % of a KMP session's CPU. The only file descriptor a
backtest registers is the loop's self-pipe, whose byte only wakes a loop *blocked* in the selector —
a callback another thread hands over (``call_soon_threadsafe``) is already in the ready queue when
the byte is written. So while nothing else is registered, a zero-timeout poll is answered "nothing"
without asking the kernel; a poll that may block (the loop has nothing ready) still goes to it, and
drains the pipe then.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _QuietPollSelector(selectors.DefaultSelector):
    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if timeout is not None and timeout <= 0 and len(self.get_map()) <= 1:
            return []
        return super().select(timeout)


def backtest_loop() -> asyncio.AbstractEventLoop:
    """A standard :class:`asyncio.SelectorEventLoop` (the driver reads its ready queue) whose zero-timeout
    polls skip the kernel while the self-pipe is its only file descriptor."""
    return asyncio.SelectorEventLoop(_QuietPollSelector())
