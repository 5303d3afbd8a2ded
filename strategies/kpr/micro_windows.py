"""P20 KRX micro-windows: 180 s from 09:30, 10:00, 11:30, 13:00 and 14:30.

Inside a window the investor/program stale limit is 30 s (else 120 s) and WARM symbols are polled
every 15 s (else 30 s); COLD stays at 180 s. The policy only proposes a cadence: the OMS's REST
budget decides, and a call that cannot be made leaves the data stale (which adds acceptance closes
and the 0.85 size penalty, see :mod:`strategies.kpr.confidence`).
"""

from __future__ import annotations

from datetime import datetime, time

from strategies.kpr.config import KprParams
from strategies.kpr.timing import kst


def _seconds(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def in_micro_window(now: datetime | time, p: KprParams) -> bool:
    t = now if isinstance(now, time) else kst(now).time()
    s = _seconds(t)
    return any(0 <= s - _seconds(start) < p.micro_window_sec for start in p.micro_window_starts)


def stale_limit_sec(now: datetime | time, p: KprParams) -> float:
    """Investor/program data older than this is STALE (P9, P11, P20)."""
    return p.stale_micro_sec if in_micro_window(now, p) else p.stale_sec


def warm_poll_sec(now: datetime | time, p: KprParams) -> float:
    return p.warm_poll_micro_sec if in_micro_window(now, p) else p.warm_poll_sec


def cold_poll_sec(now: datetime | time, p: KprParams) -> float:
    return p.cold_poll_sec
