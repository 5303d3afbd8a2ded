"""KST time helpers for the KMP rules (all rule times are KST wall-clock times of one session)."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

from broker_core.clock import KST


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


def whole_minutes_since(now: datetime, day: date, t: time) -> int:
    """Whole minutes elapsed since ``t`` on ``day`` (0 before it): the ``m`` of K12/K15."""
    secs = (kst(now) - at(day, t)).total_seconds()
    return max(0, math.floor(secs / 60.0 + 1e-9))


def seconds_between(a: datetime, b: datetime) -> float:
    """``b − a`` in seconds."""
    return (b - a).total_seconds()
