"""Clocks: real time in production, a virtual clock for simulations, a manual clock for tests.

Every process of one simulated run derives the same virtual "now" from one environment value::

    TRADER_CLOCK=real                                   (default)
    TRADER_CLOCK="sim start=2026-02-27T08:50:00+09:00 speed=60 anchor=1795000000.25"

Virtual time equals ``start`` at wall-clock UNIX time ``anchor`` and runs ``speed`` times faster.
Without ``anchor`` a process anchors at its own start, so a launcher sets it once for all.

``anchor=@/path/to/file`` names a file the launcher writes (one UNIX time) once every process it
started reported ready: until then the clock stands still at ``start`` in every process, so a slow
start-up costs no virtual time, and all processes then run from the same anchor.

Multi-day runs add ``days=2026-03-03..2026-03-20 window=07:30-21:00`` (and ``market=krx|us`` for the
calendar and the window's timezone; krx by default): virtual time runs through each trading day's
window and jumps from one window's end to the next day's window start, so nights and weekends cost no
wall time. A sleeper whose instant falls in a gap wakes at the jump, in order, never dropped. Every
process computes the same jumps from the value.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
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


MARKET_TZ = {"krx": KST, "us": NEW_YORK}
ANCHOR_POLL_S = 0.02


@dataclass(frozen=True)
class Windows:
    """The trading days of a multi-day run and the daily window virtual time runs through."""

    first: date
    last: date
    open: dtime
    close: dtime
    market: str = "krx"

    def days(self) -> list[date]:
        from broker_core.calendars import KRX, NYSE, trading_days

        return trading_days(self.first, self.last, NYSE if self.market == "us" else KRX)

    def spans(self) -> list[tuple[datetime, datetime]]:
        """Each day's (window start, window end) in UTC."""
        tz = MARKET_TZ[self.market]
        return [
            (datetime.combine(d, self.open, tz).astimezone(UTC), datetime.combine(d, self.close, tz).astimezone(UTC))
            for d in self.days()
        ]

    def spec(self) -> str:
        text = f"days={self.first}..{self.last} window={self.open:%H:%M}-{self.close:%H:%M}"
        return text if self.market == "krx" else f"{text} market={self.market}"


class _Timeline:
    """Active segments of virtual time from ``start``: elapsed active seconds ↔ virtual instants."""

    def __init__(self, start_utc: datetime, spans: list[tuple[datetime, datetime]]) -> None:
        segments: list[tuple[datetime, datetime]] = []
        for begin, end in spans:
            if end <= start_utc:
                continue
            segments.append((max(begin, start_utc) if not segments else begin, end))
        if not segments:
            segments = [(start_utc, start_utc)]
        elif segments[0][0] > start_utc:
            segments.insert(0, (start_utc, start_utc))
        self.segments = segments
        self.begins = [b for b, _ in segments]
        self.cum: list[float] = []
        total = 0.0
        for begin, end in segments:
            self.cum.append(total)
            total += (end - begin).total_seconds()
        self.total = total

    def instant(self, elapsed: float) -> datetime:
        """Virtual instant after ``elapsed`` active seconds (a window's end reads as the next window's start)."""
        if elapsed >= self.total:
            return self.segments[-1][1] + timedelta(seconds=elapsed - self.total)
        if elapsed < 0:
            return self.segments[0][0] + timedelta(seconds=elapsed)
        i = bisect.bisect_right(self.cum, elapsed) - 1
        return self.segments[i][0] + timedelta(seconds=elapsed - self.cum[i])

    def elapsed(self, when_utc: datetime) -> float:
        """Active seconds at which the clock reaches ``when_utc`` (an instant in a gap: the jump after it)."""
        first = self.segments[0][0]
        if when_utc <= first:
            return (when_utc - first).total_seconds()
        last_end = self.segments[-1][1]
        if when_utc >= last_end:
            return self.total + (when_utc - last_end).total_seconds()
        i = bisect.bisect_right(self.begins, when_utc) - 1
        begin, end = self.segments[i]
        if when_utc <= end:
            return self.cum[i] + (when_utc - begin).total_seconds()
        return self.cum[i + 1]


class VirtualClock:
    """Virtual time = start + (wall - anchor) * speed, through the windows of a multi-day run.

    ``anchor_file``: the anchor is read from that file once it exists; until then time stands at
    ``start``."""

    def __init__(
        self,
        start: datetime,
        speed: float = 1.0,
        anchor: float | None = None,
        tz: ZoneInfo = KST,
        *,
        windows: Windows | None = None,
        anchor_file: str | None = None,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ClockSpecError(f"start={start.isoformat()} must carry a UTC offset, e.g. 2026-02-27T08:50:00+09:00")
        speed = float(speed)
        if not math.isfinite(speed) or speed <= 0:
            raise ClockSpecError(f"speed must be a finite number > 0, got {speed}")
        if anchor_file is None:
            anchor = time.time() if anchor is None else float(anchor)
            if not math.isfinite(anchor):
                raise ClockSpecError(f"anchor must be a finite UNIX time, got {anchor}")
        self.start = start.astimezone(tz)
        self._start_utc = start.astimezone(UTC)
        self._speed = speed
        self.anchor: float | None = anchor
        self.anchor_file = anchor_file
        self.windows = windows
        self._timeline = _Timeline(self._start_utc, windows.spans()) if windows is not None else None
        self._tz = tz

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def anchored(self) -> bool:
        """The anchor is known (always, unless it comes from a file not yet written)."""
        if self.anchor is None and self.anchor_file is not None:
            self.anchor = read_anchor(self.anchor_file)
        return self.anchor is not None

    def _instant(self, elapsed: float) -> datetime:
        if self._timeline is None:
            return self._start_utc + timedelta(seconds=elapsed)
        return self._timeline.instant(elapsed)

    def _elapsed(self, when: datetime) -> float:
        if self._timeline is None:
            return _seconds_between(self._start_utc, when)
        return self._timeline.elapsed(when.astimezone(UTC))

    def at(self, wall: float) -> datetime:
        """Virtual time shown at UNIX wall time ``wall`` (a pure function of the spec; ``start`` while the
        anchor is not known yet).

        Computed in UTC, so the result is exact elapsed time even in a zone with DST.
        """
        if not self.anchored:
            return self.start
        assert self.anchor is not None
        return self._instant((wall - self.anchor) * self._speed).astimezone(self._tz)

    def now(self) -> datetime:
        return self.at(time.time())

    def wall_time_of(self, when: datetime) -> float:
        """The UNIX wall time at which this clock shows ``when`` (for an instant in a gap: the jump)."""
        if not self.anchored:
            raise RuntimeError("the clock is not anchored yet (await wait_anchored())")
        assert self.anchor is not None
        return self.anchor + self._elapsed(when) / self._speed

    async def wait_anchored(self) -> None:
        while not self.anchored:
            await asyncio.sleep(ANCHOR_POLL_S)

    async def sleep(self, seconds: float) -> None:
        if self._timeline is None and self.anchored:
            await asyncio.sleep(max(0.0, seconds / self._speed))
            return
        await self.sleep_until(_add_seconds(self.now(), max(0.0, seconds)))

    async def sleep_until(self, when: datetime) -> None:
        await self.wait_anchored()
        await asyncio.sleep(max(0.0, self.wall_time_of(when) - time.time()))

    def spec(self) -> str:
        anchor: float | str | None = f"@{self.anchor_file}" if self.anchor_file else self.anchor
        return sim_spec(self.start, self._speed, anchor, windows=self.windows)


def budget_time(clock: Clock) -> float:
    """Seconds for a rate budget on ``clock``: its time; while a simulation's clock stands at its start
    waiting for its anchor, wall seconds × its speed — the pace it will run at — so a budget keeps
    refilling while the run's processes start (a strategy may load its premarket then). The reading may
    step back once, when the anchor arrives: a budget must not refill on a negative step."""
    if isinstance(clock, VirtualClock) and not clock.anchored:
        return time.monotonic() * clock.speed
    return clock.now().timestamp()


async def budget_sleep(clock: Clock, seconds: float) -> None:
    """Sleep ``seconds`` of :func:`budget_time` on ``clock``."""
    if isinstance(clock, VirtualClock) and not clock.anchored:
        await asyncio.sleep(seconds / clock.speed)
        return
    await clock.sleep(seconds)


def read_anchor(path: str) -> float | None:
    """The anchor a launcher wrote to ``path``, or None while the file is missing or still being written."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def write_anchor(path: str | Path, anchor: float | None = None) -> float:
    """Write the anchor for every process of a run (atomically: readers never see a partial value)."""
    value = time.time() if anchor is None else anchor
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(repr(float(value)))
    tmp.replace(target)
    return value


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


_PARTS = ("start", "speed", "anchor", "days", "window", "market")


def parse_clock(spec: str | None, tz: ZoneInfo = KST) -> RealClock | VirtualClock:
    """Parse a TRADER_CLOCK value ("real" or "sim start=... speed=... [anchor=...] [days=... window=...]")."""
    text = (spec or "real").strip()
    if text in ("", "real"):
        return RealClock(tz)
    kind, _, rest = text.partition(" ")
    if kind != "sim":
        raise ClockSpecError(f"{ENV_VAR}: expected 'real' or 'sim start=... speed=...', got {text!r}")
    fields: dict[str, str] = {}
    for part in rest.split():
        key, sep, value = part.partition("=")
        if not sep or key not in _PARTS:
            raise ClockSpecError(
                f"{ENV_VAR}: unknown or malformed part {part!r} (use {', '.join(k + '=' for k in _PARTS)})"
            )
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
    anchor_file = fields["anchor"][1:] if fields.get("anchor", "").startswith("@") else None
    if anchor_file is not None and not anchor_file:
        raise ClockSpecError(f"{ENV_VAR}: anchor=@ needs a file path")
    numbers: dict[str, float] = {}
    for key in ("speed", "anchor"):
        if key not in fields or (key == "anchor" and anchor_file is not None):
            continue
        try:
            number = float(fields[key])
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or (key == "speed" and number <= 0):
            what = "a finite number > 0" if key == "speed" else "a finite UNIX time in seconds (or @file)"
            raise ClockSpecError(f"{ENV_VAR}: {key}={fields[key]!r} is not {what}")
        numbers[key] = number
    windows = _parse_windows(fields)
    return VirtualClock(
        start, numbers.get("speed", 1.0), numbers.get("anchor"), tz, windows=windows, anchor_file=anchor_file
    )


def _parse_windows(fields: dict[str, str]) -> Windows | None:
    if "days" not in fields and "window" not in fields and "market" not in fields:
        return None
    if "days" not in fields:
        raise ClockSpecError(f"{ENV_VAR}: window=/market= need days=FIRST..LAST")
    first_text, sep, last_text = fields["days"].partition("..")
    try:
        first, last = date.fromisoformat(first_text), date.fromisoformat(last_text)
    except ValueError as exc:
        raise ClockSpecError(f"{ENV_VAR}: days={fields['days']!r} must be YYYY-MM-DD..YYYY-MM-DD") from exc
    if not sep or last < first:
        raise ClockSpecError(f"{ENV_VAR}: days={fields['days']!r}: the last day is before the first")
    open_text, sep, close_text = fields.get("window", "00:00-23:59").partition("-")
    try:
        open_, close = dtime.fromisoformat(open_text), dtime.fromisoformat(close_text)
    except ValueError as exc:
        raise ClockSpecError(f"{ENV_VAR}: window={fields.get('window')!r} must be HH:MM-HH:MM") from exc
    if not sep or close <= open_:
        raise ClockSpecError(f"{ENV_VAR}: window={fields.get('window')!r}: the end must be after the start")
    market = fields.get("market", "krx")
    if market not in MARKET_TZ:
        raise ClockSpecError(f"{ENV_VAR}: market={market!r} must be one of {sorted(MARKET_TZ)}")
    return Windows(first, last, open_, close, market)


def clock_from_env(tz: ZoneInfo = KST) -> RealClock | VirtualClock:
    return parse_clock(os.environ.get(ENV_VAR), tz)


def sim_spec(
    start: datetime, speed: float, anchor: float | str | None = None, *, windows: Windows | None = None
) -> str:
    """Build the TRADER_CLOCK value a launcher hands to every process of one run. ``anchor`` is a UNIX
    time (now by default) or ``"@/path"``: the file the launcher writes once every process is ready."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ClockSpecError(f"start={start.isoformat()} must carry a UTC offset")
    anchor = time.time() if anchor is None else anchor
    anchor_text = anchor if isinstance(anchor, str) else repr(float(anchor))
    text = f"sim start={start.isoformat()} speed={_fmt_number(speed)} anchor={anchor_text}"
    return f"{text} {windows.spec()}" if windows is not None else text


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)
