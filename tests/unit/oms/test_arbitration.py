import asyncio
from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from oms.core.arbitration import EntryLocks, LockResult, SymbolGate, check_entry
from oms.core.risk import RiskLimits
from oms.core.types import IntentType

T0 = datetime(2026, 2, 27, 9, 15, tzinfo=KST)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- EntryLocks ---------------------------------------------------------------------------------


def test_first_acquire_is_granted():
    locks = EntryLocks()
    r = locks.acquire("005930", "KMP", T0, 90)
    assert r == LockResult(True, "KMP", at(90))
    assert locks.owner("005930", at(10)) == ("KMP", at(90))


def test_other_strategy_is_refused_with_owner_and_until():
    locks = EntryLocks()
    locks.acquire("005930", "KMP", T0, 90)
    r = locks.acquire("005930", "KPR", at(30), 180)
    assert r == LockResult(False, "KMP", at(90))
    assert locks.owner("005930", at(30)) == ("KMP", at(90))  # unchanged


def test_same_strategy_extends_never_shortens():
    locks = EntryLocks()
    locks.acquire("005930", "KMP", T0, 90)
    assert locks.acquire("005930", "KMP", at(30), 90).until == at(120)
    assert locks.acquire("005930", "KMP", at(31), 10).until == at(120)


def test_expired_lock_is_free():
    locks = EntryLocks()
    locks.acquire("005930", "KMP", T0, 90)
    assert locks.acquire("005930", "KPR", at(89.999), 180).granted is False
    r = locks.acquire("005930", "KPR", at(90), 180)  # until <= now: expired
    assert r == LockResult(True, "KPR", at(270))
    assert locks.owner("005930", at(100)) == ("KPR", at(270))


def test_owner_none_when_free_or_expired():
    locks = EntryLocks()
    assert locks.owner("X", T0) is None
    locks.acquire("X", "KMP", T0, 5)
    assert locks.owner("X", at(5)) is None
    assert len(locks) == 0  # purged lazily


def test_release_only_by_owner():
    locks = EntryLocks()
    locks.acquire("X", "KMP", T0, 90)
    assert locks.release("X", "KPR") is False
    assert locks.owner("X", T0) is not None
    assert locks.release("X", "KMP") is True
    assert locks.owner("X", T0) is None
    assert locks.release("X", "KMP") is False


def test_locks_are_per_symbol():
    locks = EntryLocks()
    locks.acquire("A", "KMP", T0, 90)
    assert locks.acquire("B", "KPR", T0, 90).granted


def test_snapshot_and_purge():
    locks = EntryLocks()
    locks.acquire("A", "KMP", T0, 90)
    locks.acquire("B", "KPR", T0, 180)
    assert locks.snapshot(at(100)) == {"B": ("KPR", at(180))}
    assert locks.purge(at(200)) == 1
    assert len(locks) == 0


def test_negative_duration_rejected():
    with pytest.raises(ValueError):
        EntryLocks().acquire("A", "KMP", T0, -1)


def test_check_entry_defers_other_strategy_until_lock_expiry():
    limits = RiskLimits()
    locks = EntryLocks()
    first = check_entry("005930", "KMP", set(), locks, T0, limits.entry_lock_for("KMP"))
    assert first.allowed and first.lock.until == at(90)
    second = check_entry("005930", "NULRIMOK", set(), locks, at(10), limits.entry_lock_for("NULRIMOK"))
    assert not second.allowed
    assert second.reason_code == ReasonCode.ENTRY_LOCKED
    assert second.retry_at == at(90)
    assert "KMP" in second.message
    third = check_entry("005930", "NULRIMOK", {"KMP"}, locks, at(90), limits.entry_lock_for("NULRIMOK"))
    assert third.allowed and third.lock.until == at(150)


def test_check_entry_refuses_reentry_by_holder():
    locks = EntryLocks()
    r = check_entry("005930", "KMP", {"KMP", "KPR"}, locks, T0, 90)
    assert not r.allowed and r.reason_code == ReasonCode.ALREADY_HOLDING
    assert locks.owner("005930", T0) is None  # no lock taken


# -- SymbolGate ---------------------------------------------------------------------------------


async def _tick() -> None:
    """Let the loop run one round (a scheduling yield, not a timed sleep)."""
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, None)
    await fut


async def _until(cond, rounds: int = 100) -> None:
    for _ in range(rounds):
        if cond():
            return
        await _tick()
    raise AssertionError("condition not reached")


async def test_priority_order_exits_before_entries_fifo_within_priority():
    gate = SymbolGate()
    order: list[str] = []
    release_holder = asyncio.Event()
    holder_in = asyncio.Event()

    async def holder():
        async with gate.hold("005930", IntentType.ENTER.priority):
            holder_in.set()
            await release_holder.wait()

    async def worker(name: str, priority: int):
        async with gate.hold("005930", priority):
            order.append(name)

    h = asyncio.create_task(holder())
    await holder_in.wait()
    tasks = []
    for i, (name, it) in enumerate(
        [
            ("enter-1", IntentType.ENTER),
            ("exit-1", IntentType.EXIT),
            ("enter-2", IntentType.ENTER),
            ("reduce", IntentType.REDUCE),
            ("flatten", IntentType.FLATTEN),
            ("modify", IntentType.MODIFY_RISK),
        ]
    ):
        tasks.append(asyncio.create_task(worker(name, it.priority)))
        await _until(lambda n=i + 1: gate.waiting("005930") == n)
    assert order == []
    release_holder.set()
    await asyncio.gather(h, *tasks)
    assert order == ["exit-1", "flatten", "reduce", "modify", "enter-1", "enter-2"]
    assert gate.active_symbols() == set()


async def test_one_holder_at_a_time():
    gate = SymbolGate()
    inside = 0
    peak = 0
    gates = [asyncio.Event() for _ in range(5)]

    async def worker(i: int):
        nonlocal inside, peak
        async with gate.hold("A", 3):
            inside += 1
            peak = max(peak, inside)
            await gates[i].wait()
            inside -= 1

    tasks = [asyncio.create_task(worker(i)) for i in range(5)]
    await _until(lambda: gate.waiting("A") == 4)
    for g in gates:
        g.set()
    await asyncio.gather(*tasks)
    assert peak == 1
    assert gate.active_symbols() == set()


async def test_different_symbols_do_not_block_each_other():
    gate = SymbolGate()
    release = asyncio.Event()
    a_in = asyncio.Event()

    async def hold_a():
        async with gate.hold("A", 3):
            a_in.set()
            await release.wait()

    t = asyncio.create_task(hold_a())
    await a_in.wait()
    async with gate.hold("B", 3):  # would deadlock if B waited on A
        assert gate.locked("A") and gate.locked("B")
    assert gate.locked("A") and not gate.locked("B")
    release.set()
    await t
    assert gate.active_symbols() == set()


async def test_newcomer_cannot_barge_past_queued_waiter():
    gate = SymbolGate()
    order = []

    async def worker(name, prio):
        async with gate.hold("A", prio):
            order.append(name)

    async with gate.hold("A", 0):
        t1 = asyncio.create_task(worker("queued-entry", 3))
        await _until(lambda: gate.waiting("A") == 1)
    # Released: handed to the queued waiter before anyone else could run.
    t2 = asyncio.create_task(worker("late-exit", 0))
    await asyncio.gather(t1, t2)
    assert order == ["queued-entry", "late-exit"]


async def test_cancelled_waiter_is_removed_and_state_cleaned():
    gate = SymbolGate()
    order = []

    async def worker(name):
        async with gate.hold("A", 3):
            order.append(name)

    async with gate.hold("A", 0):
        t1 = asyncio.create_task(worker("w1"))
        t2 = asyncio.create_task(worker("w2"))
        await _until(lambda: gate.waiting("A") == 2)
        t1.cancel()
        await _until(lambda: gate.waiting("A") == 1)
    await t2
    with pytest.raises(asyncio.CancelledError):
        await t1
    assert order == ["w2"]
    assert gate.active_symbols() == set()


async def test_cancel_after_handoff_passes_symbol_on():
    gate = SymbolGate()
    order = []

    async def worker(name):
        async with gate.hold("A", 3):
            order.append(name)

    async with gate.hold("A", 0):
        t1 = asyncio.create_task(worker("w1"))
        t2 = asyncio.create_task(worker("w2"))
        await _until(lambda: gate.waiting("A") == 2)
    # The release handed "A" to w1; cancel w1 before it runs.
    t1.cancel()
    await t2
    with pytest.raises(asyncio.CancelledError):
        await t1
    assert order == ["w2"]
    assert gate.active_symbols() == set()


async def test_cancel_only_waiter_cleans_up():
    gate = SymbolGate()

    async def worker():
        async with gate.hold("A", 3):
            pass

    async with gate.hold("A", 0):
        t = asyncio.create_task(worker())
        await _until(lambda: gate.waiting("A") == 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert gate.waiting("A") == 0 and gate.locked("A")
    assert gate.active_symbols() == set()


async def test_exception_inside_releases():
    gate = SymbolGate()
    with pytest.raises(RuntimeError):
        async with gate.hold("A", 0):
            raise RuntimeError("boom")
    assert not gate.locked("A")
    async with gate.hold("A", 0):
        assert gate.locked("A")
    assert gate.active_symbols() == set()


async def test_no_leak_over_many_symbols():
    gate = SymbolGate()

    async def worker(sym):
        async with gate.hold(sym, 2):
            await _tick()

    await asyncio.gather(*(worker(f"S{i % 50}") for i in range(500)))
    assert gate.active_symbols() == set()
