"""KST time helpers for the KPR rules (every rule time is a KST wall-clock time of one session)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from broker_core.clock import KST
from strategies.kpr.config import TimeWindow

MINUTE = timedelta(minutes=1)


def kst(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts!r} must be timezone-aware")
    return ts.astimezone(KST)


def at(day: date, t: time) -> datetime:
    """The KST instant of time-of-day ``t`` on ``day``."""
    return datetime.combine(day, t, tzinfo=KST)


def minute_key(ts: datetime) -> int:
    """Minute of the KST day holding ``ts`` (09:00 → 540): the label of its 1m bar (B2)."""
    k = kst(ts)
    return k.hour * 60 + k.minute


def minute_of_time(t: time) -> int:
    return t.hour * 60 + t.minute


def minute_start(day: date, minute: int) -> datetime:
    return at(day, time(0, 0)) + timedelta(minutes=minute)


def in_windows(t: time, windows: Iterable[TimeWindow]) -> bool:
    return any(w.contains(t) for w in windows)
