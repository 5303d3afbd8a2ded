"""The backtest's time: a clock only the driver moves, and a driver that moves it only when every task waits
on the clock (so a chain of awaits, a queue hand-over or a to_thread call never sees time jump under it)."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, datetime, timedelta
from datetime import time as dtime

from broker_core.clock import KST, Windows
from trader.backtest.clock import DrivenClock
from trader.backtest.driver import Driver, InlineExecutor

T0 = datetime(2026, 2, 27, 9, 0, tzinfo=KST)


async def test_sleepers_wake_in_time_order_and_ties_in_the_order_they_slept() -> None:
    clock = DrivenClock(T0)
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b1", 2), ("b2", 2))]
    await asyncio.sleep(0)
    assert clock.now() == T0 and clock.sleepers == 4  # nothing moves by itself
    while (nxt := clock.next_wake()) is not None:
        clock.advance_to(nxt)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert woke == [
        ("a", T0 + timedelta(seconds=1)),
        ("b1", T0 + timedelta(seconds=2)),
        ("b2", T0 + timedelta(seconds=2)),
        ("c", T0 + timedelta(seconds=3)),
    ]


async def test_a_past_instant_returns_at_once_and_a_cancelled_sleeper_is_skipped() -> None:
    clock = DrivenClock(T0)
    await clock.sleep_until(T0 - timedelta(hours=1))
    await clock.sleep(0)
    gone = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert clock.next_wake() is None and clock.sleepers == 0


async def test_an_instant_in_the_nights_gap_wakes_at_the_next_windows_start() -> None:
    windows = Windows(date(2026, 2, 26), date(2026, 2, 27), dtime(8, 0), dtime(16, 0))
    clock = DrivenClock(datetime(2026, 2, 26, 15, 59, tzinfo=KST), windows=windows)
    seen: list[datetime] = []

    async def at(when: datetime) -> None:
        await clock.sleep_until(when)
        seen.append(clock.now())

    night = datetime(2026, 2, 26, 23, 0, tzinfo=KST)
    morning = datetime(2026, 2, 27, 8, 0, tzinfo=KST)
    tasks = [asyncio.create_task(at(morning)), asyncio.create_task(at(night))]
    await asyncio.sleep(0)
    assert clock.next_wake() == morning
    clock.advance_to(morning)
    await asyncio.gather(*tasks)
    assert seen == [morning, morning]


async def test_the_driver_moves_time_only_when_every_task_waits_on_the_clock() -> None:
    asyncio.get_running_loop().set_default_executor(InlineExecutor())
    clock = DrivenClock(T0)
    queue: asyncio.Queue[datetime] = asyncio.Queue()
    handled: list[tuple[datetime, datetime]] = []
    threads: set[str] = set()

    async def producer() -> None:
        for _ in range(5):
            await clock.sleep(1)
            queue.put_nowait(clock.now())

    async def consumer() -> None:
        while True:
            sent = await queue.get()
            for _ in range(50):  # a long chain of awaits: time must not move meanwhile
                await asyncio.sleep(0)
            await asyncio.to_thread(lambda: threads.add(threading.current_thread().name))
            handled.append((sent, clock.now()))

    tasks = [asyncio.create_task(producer()), asyncio.create_task(consumer())]
    driver = Driver(clock)
    await driver.run_until(T0 + timedelta(seconds=10))
    await driver.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert clock.now() == T0 + timedelta(seconds=10)
    assert [sent for sent, _ in handled] == [T0 + timedelta(seconds=s) for s in range(1, 6)]
    assert all(sent == seen for sent, seen in handled), handled
    assert threads == {threading.current_thread().name}  # the inline executor starts no thread
    assert driver.steps == 6  # five sleeps, then the jump to the limit


async def test_hooks_see_each_step_before_time_moves() -> None:
    clock = DrivenClock(T0)
    steps: list[tuple[datetime, datetime | None]] = []
    driver = Driver(clock, on_idle=[lambda now, nxt: steps.append((now, nxt))])

    async def job() -> None:
        await clock.sleep(30)

    task = asyncio.create_task(job())
    await driver.run_until(T0 + timedelta(minutes=1))
    await driver.stop()
    await task
    assert steps[:2] == [(T0, T0 + timedelta(seconds=30)), (T0 + timedelta(seconds=30), T0 + timedelta(minutes=1))]
