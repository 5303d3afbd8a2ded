"""The loop supervisor on its own: restart with back-off, liveness, one-shot loops, clean stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import warnings
from datetime import datetime

import pytest

from broker_core.clock import KST, ManualClock
from oms.supervisor import Beat, Supervisor
from tests.support.wait import until

START = datetime(2026, 2, 27, 9, 30, tzinfo=KST)


async def test_a_failing_loop_is_logged_restarted_with_backoff_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    restarted: list[str] = []
    sup = Supervisor(ManualClock(START), backoff_s=0.05, backoff_max_s=0.2, on_restart=restarted.append)
    runs = 0
    healthy = asyncio.Event()

    async def body(beat: Beat) -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError(f"boom {runs}")
        healthy.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="oms.supervisor"):
        sup.add("worker", body)
        await asyncio.wait_for(healthy.wait(), 5)
    assert runs == 4 and restarted == ["worker"] * 3 and sup.restarts() == {"worker": 3}
    assert sup.statuses() == {"worker": "ok"}
    failed = [r for r in caplog.records if "reason=LOOP_FAILED" in r.getMessage()]
    assert len(failed) == 3 and all(r.exc_info for r in failed), "each failure logged with its traceback"
    assert "boom 1" in failed[0].getMessage()
    await sup.stop()


async def test_backoff_doubles_per_failure_in_a_row_and_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(ManualClock(START), backoff_s=0.02, backoff_max_s=0.08)
    runs = 0

    async def always_fails(beat: Beat) -> None:
        nonlocal runs
        runs += 1
        raise ConnectionError("broker gone")

    with caplog.at_level(logging.ERROR, logger="oms.supervisor"):
        sup.add("x", always_fails)
        await until(lambda: runs >= 6, timeout=5)
        await sup.stop()
    delays = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"restarting in ([0-9.]+)s", r.getMessage())) is not None
    ]
    assert delays[:5] == [0.02, 0.04, 0.08, 0.08, 0.08], delays


async def test_status_is_restarting_during_backoff_and_a_loop_that_returns_is_restarted() -> None:
    sup = Supervisor(ManualClock(START), backoff_s=0.3, backoff_max_s=1.0)
    release = asyncio.Event()
    runs = 0

    async def stream_that_ends(beat: Beat) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            await release.wait()
            return  # the broker's stream ended
        await asyncio.Event().wait()

    sup.add("updates", stream_that_ends)
    await until(lambda: runs == 1)
    assert sup.statuses() == {"updates": "ok"}
    release.set()
    await until(lambda: sup.statuses()["updates"] == "restarting", timeout=2)
    await until(lambda: runs == 2 and sup.statuses()["updates"] == "ok", timeout=5)
    assert sup.restarts() == {"updates": 1}
    await sup.stop()


async def test_a_once_loop_that_returns_is_done_not_restarted() -> None:
    sup = Supervisor(ManualClock(START), backoff_s=0.01)
    runs = 0

    async def migrate(beat: Beat) -> None:
        nonlocal runs
        runs += 1

    sup.add("migrate", migrate, once=True)
    await until(lambda: "migrate" not in sup)
    assert runs == 1 and sup.statuses() == {}
    await sup.stop()


async def test_an_interval_loop_without_progress_is_lagging_until_it_beats_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    wall = [1000.0]
    sup = Supervisor(clock, lag_factor=3, min_lag_s=2.0, monotonic=lambda: wall[0])
    go = asyncio.Event()
    beats = 0

    async def body(beat: Beat) -> None:
        nonlocal beats
        while True:
            await go.wait()
            go.clear()
            beat()
            beats += 1

    sup.add("recon", body, interval_s=10.0)
    go.set()
    await until(lambda: beats == 1)
    assert sup.statuses() == {"recon": "ok"}
    # the clock moves 31 s (> 3 × 10) but wall time does not (a virtual clock's jump): not lagging
    clock.advance(31)
    assert sup.statuses() == {"recon": "ok"}
    # wall time passes but the (frozen test) clock does not: not lagging either
    wall[0] += 100
    go.set()
    await until(lambda: beats == 2)
    wall[0] += 100
    assert sup.statuses() == {"recon": "ok"}, "clock frozen since the last beat"
    clock.advance(31)
    with caplog.at_level(logging.ERROR, logger="oms.supervisor"):
        assert sup.statuses() == {"recon": "lagging"}
        assert sup.statuses() == {"recon": "lagging"}
    assert sum("reason=LOOP_LAGGING" in r.getMessage() for r in caplog.records) == 1, "logged once per episode"
    go.set()
    await until(lambda: beats == 3)
    assert sup.statuses() == {"recon": "ok"}
    await sup.stop()


async def test_wall_timed_loop_lags_on_wall_time_only() -> None:
    wall = [0.0]
    sup = Supervisor(ManualClock(START), lag_factor=3, min_lag_s=1.0, monotonic=lambda: wall[0])

    async def stuck(beat: Beat) -> None:
        beat()
        await asyncio.Event().wait()

    sup.add("drain", stuck, interval_s=2.0, on_clock=False)
    await asyncio.sleep(0)
    wall[0] = 5.9
    assert sup.statuses() == {"drain": "ok"}
    wall[0] = 6.1
    assert sup.statuses() == {"drain": "lagging"}
    await sup.stop()


async def test_stop_cancels_everything_and_lets_graceful_loops_finish() -> None:
    sup = Supervisor(ManualClock(START), backoff_s=10)
    finished_gracefully = asyncio.Event()
    stop_requested = asyncio.Event()

    async def forever(beat: Beat) -> None:
        await asyncio.Event().wait()

    async def graceful(beat: Beat) -> None:
        await stop_requested.wait()
        finished_gracefully.set()

    async def failing(beat: Beat) -> None:
        raise RuntimeError("down")  # sits in a 10 s back-off when stop() comes

    sup.add("a", forever)
    sup.add("b", graceful, on_stop=stop_requested.set)
    sup.add("c", failing)
    await until(lambda: sup.statuses()["c"] == "restarting")
    tasks = [lp.task for lp in sup._loops.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await asyncio.wait_for(sup.stop(), 5)
    assert finished_gracefully.is_set()
    assert all(t is not None and t.done() for t in tasks)
    assert sup.statuses() == {"a": "stopped", "b": "stopped", "c": "stopped"}
    gc.collect()
    with pytest.raises(RuntimeError):
        sup.add("late", forever)
