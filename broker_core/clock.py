"""Clocks: real time in production, a virtual clock for simulations, a manual clock for tests.

Every process of one simulated run derives the same virtual "now" from one environment value::

    TRADER_CLOCK=real                                   (default)
    TRADER_CLOCK="sim start=2026-02-27T08:50:00+09:00 speed=60 anchor=1795000000.25"

Virtual time equals ``start`` at wall-clock UNIX time ``anchor`` and runs ``speed`` times faster.
Without ``anchor`` a process anchors at its own start, so a launcher sets it once for all.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
ENV_VAR = "TRADER_CLOCK"


class ClockSpecError(ValueError):
    """TRADER_CLOCK could not be parsed; the message names the bad part."""


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Current (possibly virtual) time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...

    async def sleep_until(self, when: datetime) -> None: ...

    @property
    def speed(self) -> float: ...


class RealClock:
    speed = 1.0

    def __init__(self, tz: ZoneInfo = KST) -> None:
        self._tz = tz

    def now(self) -> datetime:
        return datetime.now(self._tz)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep(_seconds_between(self.now(), when))

    def spec(self) -> str:
        return "real"


class VirtualClock:
    """Virtual time = start + (wall - anchor) * speed."""

    def __init__(self, start: datetime, speed: float = 1.0, anchor: float | None = None, tz: ZoneInfo = KST) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ClockSpecError(f"start={start.isoformat()} must carry a UTC offset, e.g. 2026-02-27T08:50:00+09:00")
        speed = float(speed)
        if not math.isfinite(speed) or speed <= 0:
            raise ClockSpecError(f"speed must be a finite number > 0, got {speed}")
        anchor = time.time() if anchor is None else float(anchor)
        if not math.isfinite(anchor):
            raise ClockSpecError(f"anchor must be a finite UNIX time, got {anchor}")
        self.start = start.astimezone(tz)
        self._start_utc = start.astimezone(UTC)
        self._speed = speed
        self.anchor = anchor
        self._tz = tz

    @property
    def speed(self) -> float:
        return self._speed

    def at(self, wall: float) -> datetime:
        """Virtual time shown at UNIX wall time ``wall`` (a pure function of start, speed, anchor).

        Computed in UTC, so the result is exact elapsed time even in a zone with DST.
        """
        utc_now = self._start_utc + timedelta(seconds=(wall - self.anchor) * self._speed)
        return utc_now.astimezone(self._tz)

    def now(self) -> datetime:
        return self.at(time.time())

    def wall_time_of(self, when: datetime) -> float:
        """The UNIX wall time at which this clock shows ``when``."""
        return self.anchor + _seconds_between(self._start_utc, when) / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds / self._speed))

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(max(0.0, self.wall_time_of(when) - time.time()))

    def spec(self) -> str:
        return sim_spec(self.start, self._speed, self.anchor)


class ManualClock:
    """A clock moved only by ``advance``/``set``; sleepers wake when time reaches their instant.

    Used by tests and by as-fast-as-possible replays, where the feed drives time.
    """

    speed = float("inf")

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ClockSpecError("start must be timezone-aware")
        self._now = start
        self._changed = asyncio.Event() if _has_loop() else None

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("ManualClock.set needs a timezone-aware datetime")
        if when > self._now:
            self._now = when
            if self._changed is not None:
                self._changed.set()
                self._changed = asyncio.Event()

    def advance(self, seconds: float) -> None:
        self.set(_add_seconds(self._now, seconds))

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(_add_seconds(self._now, seconds))

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()


def _seconds_between(a: datetime, b: datetime) -> float:
    """``b - a`` in real elapsed seconds (via UTC: same-tzinfo subtraction ignores DST changes)."""
    return (b.astimezone(UTC) - a.astimezone(UTC)).total_seconds()


def _add_seconds(dt: datetime, seconds: float) -> datetime:
    """``dt`` plus ``seconds`` of real elapsed time, kept in ``dt``'s timezone."""
    return (dt.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(dt.tzinfo)


def _fmt_number(x: float) -> str:
    """Shortest text that parses back to exactly ``x`` (``60`` rather than ``60.0``)."""
    x = float(x)
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def parse_clock(spec: str | None, tz: ZoneInfo = KST) -> RealClock | VirtualClock:
    """Parse a TRADER_CLOCK value ("real" or "sim start=... speed=... [anchor=...]")."""
    text = (spec or "real").strip()
    if text in ("", "real"):
        return RealClock(tz)
    kind, _, rest = text.partition(" ")
    if kind != "sim":
        raise ClockSpecError(f"{ENV_VAR}: expected 'real' or 'sim start=... speed=...', got {text!r}")
    fields: dict[str, str] = {}
    for part in rest.split():
        key, sep, value = part.partition("=")
        if not sep or key not in ("start", "speed", "anchor"):
            raise ClockSpecError(f"{ENV_VAR}: unknown or malformed part {part!r} (use start=, speed=, anchor=)")
        if key in fields:
            raise ClockSpecError(f"{ENV_VAR}: {key}= given more than once")
        fields[key] = value
    if "start" not in fields:
        raise ClockSpecError(f"{ENV_VAR}: 'start=' is required for a sim clock")
    try:
        start = datetime.fromisoformat(fields["start"])
    except ValueError as exc:
        raise ClockSpecError(f"{ENV_VAR}: start={fields['start']!r} is not an ISO datetime") from exc
    if start.tzinfo is None or start.utcoffset() is None:
        raise ClockSpecError(
            f"{ENV_VAR}: start={fields['start']!r} must carry a UTC offset, e.g. 2026-02-27T08:50:00+09:00"
        )
    numbers: dict[str, float] = {}
    for key in ("speed", "anchor"):
        if key not in fields:
            continue
        try:
            number = float(fields[key])
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or (key == "speed" and number <= 0):
            what = "a finite number > 0" if key == "speed" else "a finite UNIX time in seconds"
            raise ClockSpecError(f"{ENV_VAR}: {key}={fields[key]!r} is not {what}")
        numbers[key] = number
    return VirtualClock(start, numbers.get("speed", 1.0), numbers.get("anchor"), tz)


def clock_from_env(tz: ZoneInfo = KST) -> RealClock | VirtualClock:
    return parse_clock(os.environ.get(ENV_VAR), tz)


def sim_spec(start: datetime, speed: float, anchor: float | None = None) -> str:
    """Build the TRADER_CLOCK value a launcher hands to every process of one run."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ClockSpecError(f"start={start.isoformat()} must carry a UTC offset")
    anchor = time.time() if anchor is None else anchor
    return f"sim start={start.isoformat()} speed={_fmt_number(speed)} anchor={float(anchor)!r}"


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)
