"""Scheduler on a ManualClock: the test moves time; no wall-clock sleeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import pytest

from broker_core.clock import KST, ManualClock
from strategies.sdk.scheduler import Scheduler


def kst(day: int, hms: str) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return datetime(2026, 2, day, h, m, s, tzinfo=KST)


async def until(pred: Callable[[], object], steps: int = 2000) -> None:
    """Let the event loop run until ``pred`` holds (bounded by loop iterations, not time)."""
    for _ in range(steps):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def settle(steps: int = 50) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.times: list[datetime] = []

    async def __call__(self) -> None:
        self.times.append(self.clock.now())


async def test_daily_at_runs_once_per_day_at_the_kst_time() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    job = Recorder(clock)
    sched.at("09:15", job, "scan")
    sched.start()
    await until(lambda: sched.stats["scan"].next_fire is not None)
    assert sched.stats["scan"].next_fire == kst(26, "09:15:00")
    clock.set(kst(26, "09:14:59"))
    await settle()
    assert job.times == []
    clock.set(kst(26, "09:15:00"))
    await until(lambda: len(job.times) == 1)
    clock.set(kst(26, "12:00:00"))
    await settle()
    assert len(job.times) == 1
    clock.set(kst(27, "09:15:00"))
    await until(lambda: len(job.times) == 2)
    assert job.times == [kst(26, "09:15:00"), kst(27, "09:15:00")]
    await sched.stop()


async def test_daily_time_already_past_waits_for_next_day() -> None:
    clock = ManualClock(kst(26, "10:00:00"))
    sched = Scheduler(clock)
    sched.at("09:15:00", Recorder(clock), "scan")
    sched.start()
    await until(lambda: sched.stats["scan"].next_fire == kst(27, "09:15:00"))
    await sched.stop()


async def test_trading_days_only_skips_the_weekend() -> None:
    from broker_core.calendars import is_trading_day

    clock = ManualClock(kst(27, "10:00:00"))  # a Friday
    sched = Scheduler(clock)
    sched.at("09:00", Recorder(clock), "open", trading_days_only=True)
    sched.start()
    await until(lambda: sched.stats["open"].next_fire is not None)
    fire = sched.stats["open"].next_fire
    assert fire is not None and fire.weekday() < 5 and fire.date() > kst(27, "10:00:00").date()
    assert is_trading_day(fire.date())
    await sched.stop()


async def test_every_inside_a_window_on_the_window_grid() -> None:
    clock = ManualClock(kst(26, "08:59:50"))
    sched = Scheduler(clock)
    job = Recorder(clock)
    sched.every(15, job, "regime", start="09:00", end="09:01")
    sched.start()
    for hms in ("09:00:00", "09:00:15", "09:00:30", "09:00:45"):
        clock.set(kst(26, hms))
        await until(lambda hms=hms: job.times and job.times[-1] == kst(26, hms))
    clock.set(kst(26, "09:01:00"))
    await settle()
    assert len(job.times) == 4
    assert sched.stats["regime"].next_fire == kst(27, "09:00:00")
    await sched.stop()


async def test_every_without_window_starts_now_and_skips_missed_runs() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    job = Recorder(clock)
    sched.every(10, job, "hb")
    sched.start()
    await until(lambda: len(job.times) == 1)
    clock.set(kst(26, "09:00:35"))  # 09:00:10 is due; 20 and 30 are missed
    await until(lambda: len(job.times) == 2)
    await until(lambda: sched.stats["hb"].next_fire == kst(26, "09:00:40"))
    assert job.times == [kst(26, "09:00:00"), kst(26, "09:00:35")]
    assert sched.stats["hb"].skipped == 2
    await sched.stop()


async def test_a_job_never_overlaps_itself() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    release = asyncio.Event()
    active = 0
    peak = 0
    runs = 0

    async def slow() -> None:
        nonlocal active, peak, runs
        active += 1
        peak = max(peak, active)
        await release.wait()
        active -= 1
        runs += 1

    sched.every(1, slow, "slow")
    sched.start()
    await until(lambda: active == 1)
    for _ in range(5):
        clock.advance(1)
        await settle()
    assert peak == 1 and runs == 0
    release.set()
    await until(lambda: runs >= 2)
    assert peak == 1
    await sched.stop()


async def test_a_failing_job_is_logged_by_name_and_stays_scheduled(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    calls = 0

    def boom() -> None:  # sync jobs are allowed too
        nonlocal calls
        calls += 1
        raise RuntimeError("no data")

    with caplog.at_level(logging.ERROR, logger="strategies.sdk.scheduler"):
        sched.every(60, boom, "poll-program")
        sched.start()
        await until(lambda: calls == 1)
        clock.advance(60)
        await until(lambda: calls == 2)
    assert sched.stats["poll-program"].failures == 2
    assert "RuntimeError: no data" == sched.stats["poll-program"].last_error
    assert any("poll-program" in r.getMessage() for r in caplog.records)
    await sched.stop()


async def test_stop_cancels_sleeping_jobs_and_lets_a_running_one_finish() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    release = asyncio.Event()
    finished = False

    async def busy() -> None:
        nonlocal finished
        await release.wait()
        finished = True

    later = Recorder(clock)
    sched.every(30, busy, "busy")
    sched.at("10:00", later, "later")
    sched.start()
    await until(lambda: sched.stats["busy"].running)
    stopping = asyncio.create_task(sched.stop(grace=None))
    await settle()
    assert not stopping.done()
    release.set()
    await stopping
    assert finished
    clock.set(kst(26, "10:00:00"))
    await settle()
    assert later.times == []


async def test_job_names_are_unique_and_windows_valid() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    sched.every(5, Recorder(clock), "x")
    with pytest.raises(ValueError, match="already scheduled"):
        sched.at("09:00", Recorder(clock), "x")
    with pytest.raises(ValueError, match="seconds"):
        sched.every(0, Recorder(clock), "y")
    with pytest.raises(ValueError, match="HH:MM"):
        sched.at("9h15", Recorder(clock), "z")
    with pytest.raises(ValueError, match="empty window"):
        sched.every(5, Recorder(clock), "w", start="09:00", end="09:00")


async def test_a_job_with_a_due_instant_fires_only_then_and_a_poke_wakes_it() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    due: dict[str, datetime | None] = {"at": kst(26, "09:00:05")}
    times: list[datetime] = []

    async def flush() -> None:
        times.append(clock.now())
        due["at"] = None  # nothing left to do until someone adds work

    sched.every(1.0, flush, "flush", start="09:00", end="10:00", due=lambda: due["at"])
    sched.start()
    for sec in range(0, 20):
        clock.set(kst(26, f"09:00:{sec:02d}"))
        await settle()
    assert times == [kst(26, "09:00:05")]  # not the 19 idle grid times
    due["at"] = kst(26, "09:00:30")
    sched.poke("flush", due["at"])
    for sec in range(20, 40):
        clock.set(kst(26, f"09:00:{sec:02d}"))
        await settle()
    assert times == [kst(26, "09:00:05"), kst(26, "09:00:30")]
    assert sched.stats["flush"].skipped == 0  # idle grid times are not missed runs
    sched.poke("nobody")  # an unknown job: nothing happens
    await sched.stop()


async def test_a_due_between_grid_times_fires_at_the_next_grid_time() -> None:
    clock = ManualClock(kst(26, "09:00:00"))
    sched = Scheduler(clock)
    job = Recorder(clock)
    sched.every(10.0, job, "tick", start="09:00", end="10:00", due=lambda: kst(26, "09:00:12"))
    sched.start()
    for sec in range(0, 35):
        clock.set(kst(26, f"09:00:{sec:02d}"))
        await settle()
    assert job.times == [kst(26, "09:00:20"), kst(26, "09:00:30")]
    await sched.stop()
