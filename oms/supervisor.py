"""Supervision of the OMS's background loops (reconciler, order updates, risk watch, journal drain, ...).

Each named loop runs as one asyncio task. A loop that raises is logged with its traceback
(``reason=LOOP_FAILED``) and restarted after an exponential back-off (``backoff_s``, doubling, capped at
``backoff_max_s``; the run of failures resets once a run made progress or lasted ``backoff_max_s``).
A loop that *returns* (e.g. the broker's update stream ended) is restarted the same way, unless it was
added with ``once=True`` (a job that is done when it returns, such as the migration retry).

Liveness: a loop gets a ``beat`` callable and calls it after each unit of progress (a reconcile cycle,
a drain pass). A loop added with ``interval_s`` is *lagging* when it has not beaten for ``lag_factor``
times that interval, counted both on the OMS clock and in wall time (``interval_s / clock.speed``, at
least ``min_lag_s``): a frozen test clock does not make every loop lag, nor does a virtual clock's jump
over a night. Loops without ``interval_s`` are event-driven (order updates) and only need to be alive.

``statuses()`` gives ``{name: "ok" | "restarting" | "lagging" | "stopped"}``; anything but ``ok`` makes
``/health`` say ``degraded``. ``stop()`` asks loops with a graceful ``on_stop`` to finish, cancels the
rest and awaits every task, so no task outlives the OMS. Framework-free (asyncio only).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from broker_core.clock import Clock

log = logging.getLogger("oms.supervisor")

Beat = Callable[[], None]
LoopBody = Callable[[Beat], Awaitable[None]]
"""A loop's body: called with its ``beat``; runs until cancelled (or returns, then it is restarted)."""


class LoopStatus(StrEnum):
    OK = "ok"
    RESTARTING = "restarting"
    LAGGING = "lagging"
    STOPPED = "stopped"


class _Phase(StrEnum):
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass
class _Loop:
    name: str
    body: LoopBody
    interval_s: float | None
    on_clock: bool
    once: bool
    on_stop: Callable[[], None] | None
    task: asyncio.Task[None] | None = None
    phase: _Phase = _Phase.RUNNING
    restarts: int = 0
    failures_in_a_row: int = 0
    last_error: str | None = None
    run_started_wall: float = 0.0
    run_started_clock: datetime | None = None
    beat_wall: float | None = None
    beat_clock: datetime | None = None
    beats_this_run: int = 0
    lag_logged: bool = False


class Supervisor:
    def __init__(
        self,
        clock: Clock,
        *,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        lag_factor: float = 3.0,
        min_lag_s: float = 5.0,
        on_restart: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.lag_factor = lag_factor
        self.min_lag_s = min_lag_s
        self.on_restart = on_restart
        self._mono = monotonic
        self._loops: dict[str, _Loop] = {}
        self._stopping = False

    # ---- registration ---------------------------------------------------------------------------
    def add(
        self,
        name: str,
        body: LoopBody,
        *,
        interval_s: float | None = None,
        on_clock: bool = True,
        once: bool = False,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """Start ``body`` as the supervised loop ``name`` (needs a running event loop).

        ``interval_s``: the seconds between two beats of a healthy loop (enables the lag check), on the
        OMS clock, or in wall time with ``on_clock=False`` (a loop that paces itself with asyncio, the drain).
        ``once``: returning normally means done (the loop leaves the registry), not "restart me".
        ``on_stop``: asks the loop to return by itself on ``stop()`` (e.g. the drainer's ``request_stop``)."""
        if self._stopping:
            raise RuntimeError(f"supervisor is stopped; cannot add loop {name!r}")
        current = self._loops.get(name)
        if current is not None and current.task is not None and not current.task.done():
            raise ValueError(f"loop {name!r} is already supervised")
        loop = _Loop(name, body, interval_s, on_clock, once, on_stop)
        loop.run_started_wall, loop.run_started_clock = self._mono(), self.clock.now()
        self._loops[name] = loop
        loop.task = asyncio.get_running_loop().create_task(self._run(loop), name=f"loop:{name}")
        loop.task.add_done_callback(functools.partial(self._ended_task, loop))

    # ---- the runner -----------------------------------------------------------------------------
    async def _run(self, loop: _Loop) -> None:
        while not self._stopping:
            loop.phase = _Phase.RUNNING
            loop.run_started_wall = self._mono()
            loop.run_started_clock = self.clock.now()
            loop.beats_this_run = 0
            loop.lag_logged = False
            error: BaseException | None = None
            try:
                await loop.body(functools.partial(self._beat, loop))
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if self._stopping or (task is not None and task.cancelling()):
                    raise
                error = exc  # a CancelledError escaping the body that nobody asked for: a failure too
            except Exception as exc:  # noqa: BLE001 - every failure is logged and the loop restarted
                error = exc
            if self._stopping:
                return
            if error is None and loop.once:
                self._loops.pop(loop.name, None)
                return
            loop.last_error = f"{type(error).__name__}: {error}" if error is not None else "returned"
            delay = self._next_delay(loop)
            loop.phase = _Phase.BACKOFF
            log.error(
                "loop %s %s reason=LOOP_FAILED; restarting in %gs (failure %d in a row)",
                loop.name,
                f"failed: {loop.last_error}" if error is not None else "returned (its stream or loop ended)",
                round(delay, 3),
                loop.failures_in_a_row,
                exc_info=error,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            loop.restarts += 1
            if self.on_restart is not None:
                self.on_restart(loop.name)
            log.warning("loop %s restarted (restart %d) reason=LOOP_RESTARTED", loop.name, loop.restarts)

    def _next_delay(self, loop: _Loop) -> float:
        ran_for = self._mono() - loop.run_started_wall
        if loop.beats_this_run > 0 or ran_for >= self.backoff_max_s:
            loop.failures_in_a_row = 0
        loop.failures_in_a_row += 1
        return min(self.backoff_max_s, self.backoff_s * 2 ** (loop.failures_in_a_row - 1))

    def _beat(self, loop: _Loop) -> None:
        loop.beat_wall = self._mono()
        loop.beat_clock = self.clock.now()
        loop.beats_this_run += 1

    def _ended_task(self, loop: _Loop, _task: asyncio.Task[None]) -> None:
        self._ended(loop)

    def _ended(self, loop: _Loop) -> None:
        task = loop.task
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("loop %s: its supervising task died reason=LOOP_FAILED", loop.name, exc_info=task.exception())
        loop.phase = _Phase.STOPPED

    # ---- views ----------------------------------------------------------------------------------
    def status(self, name: str) -> LoopStatus:
        loop = self._loops[name]
        if loop.phase is _Phase.STOPPED:
            return LoopStatus.STOPPED
        if loop.phase is _Phase.BACKOFF:
            return LoopStatus.RESTARTING
        if loop.interval_s is not None:
            if loop.restarts and loop.beats_this_run == 0 and not self._lagging(loop):
                return LoopStatus.RESTARTING  # restarted, but no progress yet
            if self._lagging(loop):
                if not loop.lag_logged:
                    loop.lag_logged = True
                    log.error(
                        "loop %s has made no progress for %.1fs (expected every %gs) reason=LOOP_LAGGING",
                        loop.name,
                        self._mono() - (loop.beat_wall or loop.run_started_wall),
                        loop.interval_s,
                    )
                return LoopStatus.LAGGING
        loop.lag_logged = False
        return LoopStatus.OK

    def _lagging(self, loop: _Loop) -> bool:
        assert loop.interval_s is not None and loop.run_started_clock is not None
        since_wall = max(loop.beat_wall or loop.run_started_wall, loop.run_started_wall)
        since_clock = max(loop.beat_clock or loop.run_started_clock, loop.run_started_clock)
        allowed = self.lag_factor * loop.interval_s
        if not loop.on_clock:
            return self._mono() - since_wall > max(self.min_lag_s, allowed)
        speed = self.clock.speed
        wall_allowed = max(self.min_lag_s, allowed / speed if math.isfinite(speed) and speed > 0 else 0.0)
        if self._mono() - since_wall <= wall_allowed:
            return False
        return (self.clock.now() - since_clock).total_seconds() > allowed

    def statuses(self) -> dict[str, str]:
        return {name: self.status(name).value for name in sorted(self._loops)}

    def restarts(self) -> dict[str, int]:
        return {name: loop.restarts for name, loop in sorted(self._loops.items())}

    def __contains__(self, name: object) -> bool:
        return name in self._loops

    # ---- shutdown -------------------------------------------------------------------------------
    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop every loop: graceful ones first (``on_stop``, up to ``grace_s``), then cancel the rest;
        returns when every task has finished."""
        self._stopping = True
        loops = list(self._loops.values())
        graceful = []
        for loop in loops:
            if loop.on_stop is not None and loop.task is not None and not loop.task.done():
                try:
                    loop.on_stop()
                except Exception:  # noqa: BLE001 - cancelled below instead
                    log.warning("loop %s: graceful stop failed; cancelling it", loop.name, exc_info=True)
                    continue
                graceful.append(loop.task)
        if graceful:
            await asyncio.wait(graceful, timeout=grace_s)
        tasks = [lp.task for lp in loops if lp.task is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for loop in loops:
            loop.phase = _Phase.STOPPED
