"""Clocks: real time in production, a virtual clock for simulations, a manual clock for tests.

Every process of one simulated run derives the same virtual "now" from one environment value::

    TRADER_CLOCK=real                                   (default)
    TRADER_CLOCK="sim start=2026-02-27T08:50:00+09:00 speed=60 anchor=1795000000.25"

Virtual time equals ``start`` at wall-clock UNIX time ``anchor`` and runs ``speed`` times faster.
Without ``anchor`` a process anchors at its own start, so a launcher sets it once for all.
"""
from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timedelta, timezone
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
        await self.sleep((when - self.now()).total_seconds())

    def spec(self) -> str:
        return "real"


class VirtualClock:
    """Virtual time = start + (wall - anchor) * speed."""

    def __init__(self, start: datetime, speed: float = 1.0, anchor: float | None = None,
                 tz: ZoneInfo = KST) -> None:
        if start.tzinfo is None:
            raise ClockSpecError("start must carry a UTC offset, e.g. 2026-02-27T08:50:00+09:00")
        if speed <= 0:
            raise ClockSpecError(f"speed must be > 0, got {speed}")
        self.start = start.astimezone(tz)
        self._speed = float(speed)
        self.anchor = time.time() if anchor is None else float(anchor)
        self._tz = tz

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self._speed)

    def wall_time_of(self, when: datetime) -> float:
        """The UNIX wall time at which this clock shows ``when``."""
        return self.anchor + (when - self.start).total_seconds() / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds / self._speed))

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(max(0.0, self.wall_time_of(when) - time.time()))

    def spec(self) -> str:
        return f"sim start={self.start.isoformat()} speed={self._speed:g} anchor={self.anchor!r}"


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
        if when > self._now:
            self._now = when
            if self._changed is not None:
                self._changed.set()
                self._changed = asyncio.Event()

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=seconds))

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()


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
        fields[key] = value
    if "start" not in fields:
        raise ClockSpecError(f"{ENV_VAR}: 'start=' is required for a sim clock")
    try:
        start = datetime.fromisoformat(fields["start"])
    except ValueError as exc:
        raise ClockSpecError(f"{ENV_VAR}: start={fields['start']!r} is not an ISO datetime") from exc
    try:
        speed = float(fields.get("speed", "1"))
        anchor = float(fields["anchor"]) if "anchor" in fields else None
    except ValueError as exc:
        raise ClockSpecError(f"{ENV_VAR}: speed and anchor must be numbers ({exc})") from exc
    return VirtualClock(start, speed, anchor, tz)


def clock_from_env(tz: ZoneInfo = KST) -> RealClock | VirtualClock:
    return parse_clock(os.environ.get(ENV_VAR), tz)


def sim_spec(start: datetime, speed: float, anchor: float | None = None) -> str:
    """Build the TRADER_CLOCK value a launcher hands to every process of one run."""
    anchor = time.time() if anchor is None else anchor
    return f"sim start={start.isoformat()} speed={speed:g} anchor={anchor!r}"


def utc(dt: datetime) -> datetime:
    return dt.astimezone(timezone.utc)
