"""Scheduled jobs in KST on the shared :class:`~broker_core.clock.Clock`.

Why not APScheduler 3.x: it measures time on the wall clock (its event loop waits for wall
seconds). A strategy in a simulation runs on a ``VirtualClock`` (60× or faster) and in tests and
as-fast-as-possible replays on a ``ManualClock``, which has no wall time at all. APScheduler could
follow a VirtualClock only through a custom trigger that maps each virtual fire time back to wall
time (``VirtualClock.wall_time_of``) — two time bases to keep consistent — and it still could not
follow a ManualClock. The jobs we need are few and simple (daily at HH:MM, every N seconds inside
a KST window), so this module does it directly: one task per job that awaits
``clock.sleep_until(next_fire)``. The same code therefore runs on real, virtual and manual time.

Rules:
- A job never overlaps itself: its task awaits the run before computing the next fire time.
  Fire times missed while a run was still going are skipped, not queued.
- An exception in a job is logged with the job's name; the job stays scheduled.
- ``at``: once a day at the given KST time; a time already past when the scheduler starts waits
  for the next day (no catch-up — strategies that must catch up check in ``on_start``).
- ``every``: fire times lie on a grid of ``seconds`` anchored at the window's start each day (or,
  without a window, at the moment the job starts), inside ``[start, end)`` KST.
- ``every(..., due=f)``: the job has nothing to do before ``f()`` (None: nothing until poked), so it fires
  only at the grid times at or after that instant — the same fire times at which a run has work, none
  of the idle ones (a backtest's clock then jumps over them). Whoever gives the job new work calls
  :meth:`Scheduler.poke` with the instant it is due.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from broker_core.clock import KST, Clock

log = logging.getLogger("strategies.sdk.scheduler")

Job = Callable[[], Awaitable[None] | None]


def parse_time(value: time | str) -> time:
    """``time`` or ``"HH:MM[:SS]"``."""
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a time of day (HH:MM[:SS]): {value!r}") from exc


class _Daily:
    def __init__(self, at: time, tz: ZoneInfo, day_ok: Callable[[date], bool] | None) -> None:
        self.at, self.tz, self.day_ok = at, tz, day_ok

    def next_fire(self, now: datetime, last: datetime | None) -> datetime:
        day = now.astimezone(self.tz).date()
        while True:
            fire = datetime.combine(day, self.at, tzinfo=self.tz)
            if fire >= now and (last is None or fire > last) and (self.day_ok is None or self.day_ok(day)):
                return fire
            day += timedelta(days=1)


class _Every:
    def __init__(self, seconds: float, start: time | None, end: time | None, tz: ZoneInfo) -> None:
        self.step = timedelta(seconds=seconds)
        self.start, self.end, self.tz = start, end, tz
        self.anchor: datetime | None = None
        self._windows: dict[date, tuple[datetime, datetime]] = {}
        self._current: tuple[datetime, datetime] | None = None
        """The window the last fire time fell in."""

    def next_fire(self, now: datetime, last: datetime | None) -> datetime:
        floor = now if last is None or last < now else last + timedelta(microseconds=1)
        if self.start is None and self.end is None:
            if self.anchor is None:
                self.anchor = now
            return self._on_grid(self.anchor, floor)
        current = self._current
        if current is not None and current[0] <= floor < current[1]:
            # inside the window of the last fire (the common case): no earlier window ends after ``floor``
            fire = self._on_grid(current[0], floor)
            if fire < current[1]:
                return fire
        day = now.astimezone(self.tz).date() - timedelta(days=1)  # a window may run past midnight
        for _ in range(400):
            begin, finish = self._window(day)
            if floor < finish:
                fire = self._on_grid(begin, floor)
                if fire < finish:
                    self._current = (begin, finish)
                    return fire
            day += timedelta(days=1)
        raise RuntimeError("no fire time within 400 days")  # unreachable for a non-empty window

    def _window(self, day: date) -> tuple[datetime, datetime]:
        """The window of ``day`` (begin, end), computed once per day: the job asks again at every fire."""
        window = self._windows.get(day)
        if window is None:
            begin = datetime.combine(day, self.start or time(0), tzinfo=self.tz)
            finish = (
                datetime.combine(day, self.end, tzinfo=self.tz)
                if self.end is not None
                else datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
            )
            if finish <= begin:
                finish += timedelta(days=1)
            if len(self._windows) > 8:
                self._windows.clear()
            window = self._windows[day] = (begin, finish)
        return window

    def _on_grid(self, anchor: datetime, floor: datetime) -> datetime:
        if floor <= anchor:
            return anchor
        k = math.ceil((floor - anchor) / self.step)
        return anchor + k * self.step


@dataclass
class JobStats:
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    """Fire times missed because the previous run was still going."""
    running: bool = False
    last_start: datetime | None = None
    last_error: str | None = None
    next_fire: datetime | None = None


Due = Callable[[], datetime | None]
"""When a job next has work: an instant, or None for nothing until it is poked."""


@dataclass
class _Entry:
    name: str
    job: Job
    schedule: _Daily | _Every
    due: Due | None = None
    stats: JobStats = field(default_factory=JobStats)
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle_until: datetime | None = None
    idle: bool = False
    """Waiting for its due fire time (``idle_until``; None: for a poke) rather than the next grid time."""


def _missed(schedule: _Daily | _Every, last: datetime, fire: datetime, cap: int = 100_000) -> int:
    """Fire times strictly between ``last`` and ``fire`` (missed while a run was going)."""
    count, t = 0, schedule.next_fire(last, last)
    while t < fire and count < cap:
        count += 1
        t = schedule.next_fire(t, t)
    return count


class Scheduler:
    """Jobs on one clock; :meth:`start` once, :meth:`stop` at shutdown."""

    def __init__(self, clock: Clock, tz: ZoneInfo = KST) -> None:
        self.clock = clock
        self.tz = tz
        self._jobs: dict[str, _Entry] = {}
        self._started = False
        self._stopping = False

    def at(self, time_kst: time | str, job: Job, name: str, *, trading_days_only: bool = False) -> None:
        """Run ``job`` every day at ``time_kst`` (KST), optionally only on KRX trading days."""
        day_ok = None
        if trading_days_only:
            from broker_core.calendars import is_trading_day

            day_ok = is_trading_day
        self._add(_Entry(name, job, _Daily(parse_time(time_kst), self.tz, day_ok)))

    def every(
        self,
        seconds: float,
        job: Job,
        name: str,
        *,
        start: time | str | None = None,
        end: time | str | None = None,
        due: Due | None = None,
    ) -> None:
        """Run ``job`` every ``seconds`` of clock time, inside ``[start, end)`` KST when given; with ``due``,
        only at the fire times at or after the instant it returns (see the module docstring)."""
        if not seconds > 0:
            raise ValueError(f"job {name}: seconds must be > 0, got {seconds}")
        s = parse_time(start) if start is not None else None
        e = parse_time(end) if end is not None else None
        if s is not None and e is not None and s == e:
            raise ValueError(f"job {name}: empty window {s}–{e}")
        self._add(_Entry(name, job, _Every(seconds, s, e, self.tz), due))

    def poke(self, name: str, at: datetime | None = None) -> None:
        """Job ``name`` has work due at ``at`` (None: now): an idle job waiting past that instant looks again."""
        entry = self._jobs.get(name)
        if entry is None or not entry.idle:
            return
        if at is None or entry.idle_until is None or at < entry.idle_until:
            entry.wake.set()

    def _add(self, entry: _Entry) -> None:
        if entry.name in self._jobs:
            raise ValueError(f"a job named {entry.name!r} is already scheduled")
        self._jobs[entry.name] = entry
        if self._started and not self._stopping:
            self._spawn(entry)

    def cancel(self, name: str) -> None:
        """Remove a job; a run in progress is cancelled."""
        entry = self._jobs.pop(name)
        if entry.task is not None:
            entry.task.cancel()

    @property
    def stats(self) -> dict[str, JobStats]:
        return {name: e.stats for name, e in self._jobs.items()}

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for entry in self._jobs.values():
            self._spawn(entry)

    def _spawn(self, entry: _Entry) -> None:
        entry.task = asyncio.create_task(self._loop(entry), name=f"job:{entry.name}")

    async def _loop(self, entry: _Entry) -> None:
        last: datetime | None = None
        ran = False
        while not self._stopping:
            now = self.clock.now()
            fire = entry.schedule.next_fire(now, last)
            if ran and last is not None and now > last:  # a run that took no clock time missed nothing
                entry.stats.skipped += _missed(entry.schedule, last, fire)
            ran = False
            if entry.due is not None:
                due = entry.due()
                if due is None or due > fire:
                    later = None if due is None else entry.schedule.next_fire(due, last)
                    if later is None or later > fire:
                        entry.stats.next_fire = later
                        if await self._idle(entry, later) or later is None:
                            continue  # poked: new work may be due sooner
                        fire = later
            entry.stats.next_fire = fire
            await self.clock.sleep_until(fire)
            if self._stopping:
                return
            last = fire
            ran = True
            await self._run(entry)

    async def _idle(self, entry: _Entry, until: datetime | None) -> bool:
        """Wait until ``until`` (None: forever) or a poke; True when poked first."""
        entry.wake.clear()
        entry.idle, entry.idle_until = True, until
        try:
            if until is None:
                await entry.wake.wait()
                return True
            poked = asyncio.ensure_future(entry.wake.wait())
            slept = asyncio.ensure_future(self.clock.sleep_until(until))
            try:
                done, _ = await asyncio.wait((poked, slept), return_when=asyncio.FIRST_COMPLETED)
            finally:
                poked.cancel()
                slept.cancel()
            return slept not in done
        finally:
            entry.idle, entry.idle_until = False, None

    async def _run(self, entry: _Entry) -> None:
        stats = entry.stats
        stats.running = True
        stats.last_start = self.clock.now()
        try:
            result = entry.job()
            if inspect.isawaitable(result):
                await result
            stats.runs += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled job %s failed", entry.name)
        finally:
            stats.running = False

    async def stop(self, grace: float | None = 10.0) -> None:
        """Stop scheduling; a run in progress may finish within ``grace`` wall seconds, then is cancelled."""
        self._stopping = True
        tasks = [e.task for e in self._jobs.values() if e.task is not None and not e.task.done()]
        for entry in self._jobs.values():
            if entry.task is not None and not entry.stats.running:
                entry.task.cancel()
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            log.warning("scheduled job %s still running after %ss; cancelling it", task.get_name(), grace)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
